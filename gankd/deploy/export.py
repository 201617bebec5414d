"""Exports of a network to ONNX (opset 17) and to ncnn (through pnnx, fp32 weights), each run on
check inputs and compared with torch's output: the largest absolute difference is recorded, and an
export that differs by more than ``PARITY_TOLERANCE`` -- or fails to export at all -- is a result
with its reason, never an exception that ends a run.

Exports are cached under ``folder/<key>/`` where the key is the sha256 of the weights, the input
shapes, the exporters' versions and pnnx's memory cap; the teacher is exported once for every
student it is compared with.

pnnx runs in a process of its own with its address space capped (``pnnx_memory_cap``): its ncnn
pass needs memory that doubles with every RRDB block past about 18 (measured with pnnx 20241223,
20250530, 20251119, 20260526 and 20261020 alike, on RRDBNet 16/8: 18 blocks 0.85 GB and 3 s,
20 blocks 3.0 GB, 21 blocks 5.9 GB, 23 blocks 23 GB and 3 minutes; the ONNX route through pnnx is
the same). Uncapped, the 23-block teacher drew the kernel's OOM killer, which may kill any process
on the machine (a training run beside the export); capped, pnnx fails alone and fast, and the
report shows why. The doubling is pnnx's
``expand_expression`` (pass_ncnn): it names each operand it makes after its expression with the
inputs' names spelled out, and an RRDB's output expression names the block's input twice (through
the dense blocks' residuals and its own), so names double per block. ``_cut_expression_chains``
traces every block of a ``Sequential`` trunk with a ``clone`` after it, which pnnx keeps through
its expression passes and then drops as a no-op: the 23-block RRDBNet converts in 11 s and 0.9 GB,
with the same ncnn layers.

Choices: ONNX uses torch's TorchScript exporter (``dynamo=False``; the torch.export-based one
needs ``onnxscript``), dynamic height and width for networks that take any size (RRDBNet), fixed
for those that do not (GCFSR: ``out_size``). Exporters get ``fold.folded(model)``, the same network
with its run-time weight expressions (StyleGAN2's equalised lr, modulated convs, blurs) made
constants; the parity check compares with the original's outputs. pnnx is asked for fp32 weights
(``fp16=False``): its default fp16 weights differ from torch by ~2e-3, which a parity check at
1e-4 would rightly fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gankd import atomic
from gankd.deploy import EXPORTED, PARITY_TOLERANCE
from gankd.deploy.fold import folded
from gankd.deploy.runtimes import load
from gankd.errors import ConfigError
from gankd.locks import file_lock

#: environment variable that sets pnnx's memory cap in GiB (default: half the machine's memory)
PNNX_MEMORY_ENV = "GANKD_PNNX_MEMORY_GB"


@dataclass
class ExportResult:
    runtime: str
    ok: bool
    files: dict[str, str] = field(default_factory=dict)
    max_abs_diff: float | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """What the report shows: "ok (max diff 3e-06)", "mismatch 3e-02", "export failed: ..."."""
        if self.error:
            return f"export failed: {self.error}"
        if not self.ok:
            return f"mismatch {self.max_abs_diff:.1e}"
        return f"ok (max diff {self.max_abs_diff:.0e})"


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "missing"


def network_key(model: nn.Module, shapes: list[list[int]]) -> str:
    h = hashlib.sha256()
    buf = io.BytesIO()
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buf)
    h.update(buf.getvalue())
    # "fold": exports made before folding (GCFSR's failed) are not read back as results
    # "pnnx_cap": a failure under one cap is not read back under another (nor from before the cap);
    # "cut": failures from before _cut_expression_chains are not read back
    h.update(json.dumps({"class": type(model).__name__, "shapes": shapes, "opset": 17, "fold": 1,
                         "pnnx_cap": pnnx_memory_cap(), "cut": 1,
                         "versions": [_version(p) for p in ("torch", "onnx", "pnnx", "ncnn")]}).encode())
    return h.hexdigest()[:16]


def pnnx_memory_cap() -> int:
    """Bytes of address space pnnx may take: ``$GANKD_PNNX_MEMORY_GB`` GiB, else half the
    machine's physical memory (module doc: what pnnx does without one)."""
    env = os.environ.get(PNNX_MEMORY_ENV)
    if env:
        try:
            gib = float(env)
        except ValueError:
            gib = -1.0
        if not gib > 0:
            raise ConfigError(f"{PNNX_MEMORY_ENV}={env!r}: expected a positive number of GiB")
        return int(gib * 2**30)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def torch_outputs(model: nn.Module, inputs: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    model.eval()
    if hasattr(model, "set_random_noise"):
        model.set_random_noise(False)
    with torch.inference_mode():
        return [model(*[torch.from_numpy(x) for x in xs]).float().numpy() for xs in inputs]


def export(model: nn.Module, check_inputs: list[tuple[np.ndarray, ...]], folder: Path,
           threads: int = 2) -> dict[str, ExportResult]:
    """Export ``model`` (CPU, eval) to every runtime of ``EXPORTED`` and check each against torch
    on ``check_inputs`` (tuples of batch-1 float32 arrays); cached (module doc)."""
    model = model.cpu().eval()
    if hasattr(model, "set_random_noise"):
        model.set_random_noise(False)
    key = network_key(model, [list(x.shape) for x in check_inputs[0]])
    out = folder / key
    record = out / "export.json"
    with file_lock(folder / f".{key}.lock"):
        if record.is_file():
            return {k: ExportResult(**v) for k, v in json.loads(record.read_text()).items()}
        out.mkdir(parents=True, exist_ok=True)
        expected = torch_outputs(model, check_inputs)
        deployable = folded(model, [torch.from_numpy(x) for x in check_inputs[0]])
        results = {}
        for runtime in EXPORTED:
            t0 = time.perf_counter()
            try:
                files = _write(runtime, deployable, check_inputs[0], out)
                runner = load(runtime, None, files, threads)
                diff = max(float(np.abs(runner.run(xs) - want).max())
                           for xs, want in zip(check_inputs, expected))
                results[runtime] = ExportResult(runtime, diff <= PARITY_TOLERANCE, files, diff)
            except Exception as exc:  # a network a runtime cannot take is a result, not a crash
                results[runtime] = ExportResult(runtime, False, error=f"{type(exc).__name__}: {exc}"[:300])
            results[runtime].seconds = time.perf_counter() - t0
        atomic.write_json(record, {k: asdict(v) for k, v in results.items()})
        return results


def _write(runtime: str, model: nn.Module, example: tuple[np.ndarray, ...], out: Path) -> dict[str, str]:
    args = tuple(torch.from_numpy(x) for x in example)
    names = [f"in{i}" for i in range(len(args))]
    any_size = not hasattr(model, "out_size")  # GCFSR takes exactly its out_size
    if runtime == "onnxruntime":
        path = out / "model.onnx"
        dynamic = {n: {2: "h", 3: "w"} for n, a in zip(names, args) if a.dim() == 4} if any_size else None
        if dynamic:
            dynamic["out0"] = {2: "H", 3: "W"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, args, str(path), opset_version=17, dynamo=False, input_names=names,
                              output_names=["out0"], dynamic_axes=dynamic)
        return {"onnx": str(path)}
    if runtime == "ncnn":
        other = None
        if any_size:  # a second shape tells pnnx which dimensions are free
            other = tuple(torch.nn.functional.interpolate(a, scale_factor=1.5) if a.dim() == 4 else a
                          for a in args)
        return _pnnx(model, args, other, out)
    raise ValueError(f"unknown runtime {runtime!r}")


def _pnnx(model: nn.Module, args: tuple[torch.Tensor, ...], other: tuple[torch.Tensor, ...] | None,
          out: Path) -> dict[str, str]:
    """torch -> ncnn through the pnnx binary, as ``pnnx.export`` runs it (trace, then convert with
    fp32 weights), but with its memory capped and its exit status read (``pnnx.export`` ignores
    both): a pnnx that dies says how."""
    import pnnx

    pt = out / "model.pt"
    with warnings.catch_warnings(), _cut_expression_chains(model):
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notice
        torch.jit.trace(model, args).save(str(pt))

    def shapes(xs: tuple[torch.Tensor, ...]) -> str:
        return ",".join(f"[{','.join(str(d) for d in x.shape)}]f32" for x in xs)

    param, bin_path = out / "model.ncnn.param", out / "model.ncnn.bin"
    cmd = [pnnx.EXEC_PATH, str(pt), f"inputshape={shapes(args)}", "device=cpu", "optlevel=2", "fp16=0",
           f"pnnxparam={out / 'model.pnnx.param'}", f"pnnxbin={out / 'model.pnnx.bin'}",
           f"pnnxpy={out / 'model_pnnx.py'}", f"pnnxonnx={out / 'model.pnnx.onnx'}",
           f"ncnnparam={param}", f"ncnnbin={bin_path}", f"ncnnpy={out / 'model_ncnn.py'}"]
    if other is not None:
        cmd.append(f"inputshape2={shapes(other)}")
    cap = pnnx_memory_cap()
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        _cap_memory(proc.pid, cap)
        _, log = proc.communicate()
    if proc.returncode == 0 and param.is_file() and bin_path.is_file():
        return {"ncnn_param": str(param), "ncnn_bin": str(bin_path)}
    seconds = time.perf_counter() - t0
    if "bad_alloc" in log or "can't allocate" in log:
        raise MemoryError(f"pnnx ran out of memory under its {cap / 2**30:.1f} GiB cap after {seconds:.0f} s "
                          f"({PNNX_MEMORY_ENV} raises the cap)")
    last = next((line for line in reversed(log.splitlines()) if line.strip()), "no output")
    raise RuntimeError(f"pnnx exited with {proc.returncode} after {seconds:.0f} s, no ncnn files: "
                       f"{last[:120]}")


@contextlib.contextmanager
def _cut_expression_chains(model: nn.Module) -> Iterator[None]:
    """While tracing for pnnx, every block of a ``Sequential`` trunk (a child with children of its
    own: RRDBNet's RRDBs) ends in a ``clone`` (module doc: why). Leaf layers are left alone, so
    pnnx still sees ``nn.Conv2d`` and the rest as the modules it converts."""
    handles = [block.register_forward_hook(lambda _m, _i, out: out.clone() if torch.is_tensor(out) else out)
               for seq in model.modules() if isinstance(seq, nn.Sequential)
               for block in seq if any(True for _ in block.children())]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _cap_memory(pid: int, cap: int) -> None:
    """Caps a started process's address space, from outside and at once (pnnx allocates nothing
    large before it has read the model); where the platform cannot (no ``prlimit``: macOS,
    Windows) pnnx runs uncapped."""
    try:
        import resource

        resource.prlimit(pid, resource.RLIMIT_AS, (cap, cap))
    except (ImportError, AttributeError, ProcessLookupError):
        pass


def summary(results: dict[str, ExportResult]) -> dict[str, Any]:
    return {k: {"ok": r.ok, "max_abs_diff": r.max_abs_diff, "error": r.error, "status": r.status,
                "seconds": round(r.seconds, 1)} for k, r in results.items()}
