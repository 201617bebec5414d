"""Latency per runtime, each measured in a fresh process of its own (``python -m
gankd.deploy.latency SPEC``): a runtime's thread pool, allocator and JIT caches never colour
another's numbers, and the parent's threads and load are not the child's.

A measurement is ``warmup`` untimed runs, then ``repeats`` timed ones at batch 1; it reports the
median, the interquartile range and the 10th/90th percentiles in milliseconds, the runtime's thread
count and the CPU model. Torch runs build the network from its architecture and state dict;
exported runtimes load the files ``gankd.deploy.export`` wrote and checked. A CUDA runtime's
record also names the GPU and its largest difference from fp32 torch on the CPU.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def measure(runtime: str, arch: str, kwargs: dict[str, Any], state: Path, files: dict[str, str],
            size: int, threads: int, warmup: int = 3, repeats: int = 10,
            timeout: float = 1800) -> dict[str, Any]:
    """The latency of one runtime on one network at input side ``size``, in a child process;
    a failure is a result with its reason."""
    spec = {"runtime": runtime, "arch": arch, "kwargs": kwargs, "state": str(state), "files": files,
            "size": size, "threads": threads, "warmup": warmup, "repeats": repeats}
    # OpenMP's default wait policy, as a deployed torch or ncnn runs (ONNX Runtime's own pool
    # spins by default too): passive waiting made the GCFSR cpu student 2x slower in torch and 6x
    # in ncnn (docs/deployment.md)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec))
        proc = subprocess.run([sys.executable, "-m", "gankd.deploy.latency", str(path)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"runtime": runtime, "size": size, "error": tail[0][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from gankd.deploy import CUDA_RUNTIMES
    from gankd.deploy.runtimes import load
    from gankd.hardware import cpu_info
    from gankd.models import MODELS

    torch.set_num_threads(spec["threads"])
    model = MODELS.get(spec["arch"])(**spec["kwargs"])
    model.load_state_dict(torch.load(spec["state"], map_location="cpu", weights_only=True))
    model.eval()
    inputs = [t.numpy() for t in model.example_inputs(1, spec["size"])]
    extra: dict[str, Any] = {}
    if spec["runtime"] in CUDA_RUNTIMES:
        if not torch.cuda.is_available():
            raise RuntimeError(f"{spec['runtime']}: torch sees no CUDA device")
        # a GPU runtime's output against fp32 torch on the CPU, on this very input: bf16 and
        # TF32 convolutions differ from it by design, so this is recorded, not a pass/fail
        reference = load("torch", copy.deepcopy(model), {}, spec["threads"]).run(inputs)
        extra["device"] = torch.cuda.get_device_name()
    runner = load(spec["runtime"], model, spec["files"], spec["threads"])
    if extra:
        extra["max_abs_diff"] = float(np.abs(runner.run(inputs) - reference).max())
    for _ in range(spec["warmup"]):
        runner.run(inputs)
    times = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        runner.run(inputs)
        times.append((time.perf_counter() - t0) * 1e3)
    p10, p25, p50, p75, p90 = np.percentile(times, [10, 25, 50, 75, 90])
    return {"runtime": spec["runtime"], "size": spec["size"], "median_ms": float(p50),
            "iqr_ms": float(p75 - p25), "p10": float(p10), "p90": float(p90), "repeats": spec["repeats"],
            "threads": spec["threads"],
            "input_shapes": [list(x.shape) for x in inputs], "cpu": cpu_info()["model"], **extra}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(Path(sys.argv[1]).read_text()))))
