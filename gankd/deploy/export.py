"""Exports of a network to ONNX (opset 17) and to ncnn (through pnnx, fp32 weights), each run on
check inputs and compared with torch's output: the largest absolute difference is recorded, and an
export that differs by more than ``PARITY_TOLERANCE`` -- or fails to export at all -- is a result
with its reason, never an exception that ends a run.

Exports are cached under ``folder/<key>/`` where the key is the sha256 of the weights, the input
shapes and the exporters' versions: pnnx needs about two minutes for a 23-block RRDBNet on one core,
and the teacher is exported once for every student it is compared with.

Choices: ONNX uses torch's TorchScript exporter (``dynamo=False``; the torch.export-based one
needs ``onnxscript``), dynamic height and width for networks that take any size (RRDBNet), fixed
for those that do not (GCFSR: ``out_size``). Exporters get ``fold.folded(model)``, the same network
with its run-time weight expressions (StyleGAN2's equalised lr, modulated convs, blurs) made
constants; the parity check compares with the original's outputs. pnnx is asked for fp32 weights
(``fp16=False``): its default fp16 weights differ from torch by ~2e-3, which a parity check at
1e-4 would rightly fail.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
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
from gankd.locks import file_lock


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
    h.update(json.dumps({"class": type(model).__name__, "shapes": shapes, "opset": 17, "fold": 1,
                         "versions": [_version(p) for p in ("torch", "onnx", "pnnx", "ncnn")]}).encode())
    return h.hexdigest()[:16]


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
        import pnnx

        param, bin_path = out / "model.ncnn.param", out / "model.ncnn.bin"
        other = None
        if any_size:  # a second shape tells pnnx which dimensions are free
            other = tuple(torch.nn.functional.interpolate(a, scale_factor=1.5) if a.dim() == 4 else a
                          for a in args)
        pnnx.export(model, str(out / "model.pt"), args, inputs2=other, fp16=False, ncnnparam=str(param),
                    ncnnbin=str(bin_path), pnnxparam=str(out / "model.pnnx.param"),
                    pnnxbin=str(out / "model.pnnx.bin"), pnnxpy=str(out / "model_pnnx.py"),
                    pnnxonnx=str(out / "model.pnnx.onnx"), ncnnpy=str(out / "model_ncnn.py"))
        if not param.is_file() or not bin_path.is_file():
            raise RuntimeError("pnnx wrote no ncnn files")
        return {"ncnn_param": str(param), "ncnn_bin": str(bin_path)}
    raise ValueError(f"unknown runtime {runtime!r}")


def summary(results: dict[str, ExportResult]) -> dict[str, Any]:
    return {k: {"ok": r.ok, "max_abs_diff": r.max_abs_diff, "error": r.error, "status": r.status,
                "seconds": round(r.seconds, 1)} for k, r in results.items()}
