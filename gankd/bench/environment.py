"""What a result records about where it was produced: git sha, library versions, device."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from importlib import metadata
from typing import Any

import torch

from gankd.paths import REPO_ROOT

LIBRARIES = ("torch", "torchvision", "basicsr", "numpy", "lpips", "pytorch-fid", "fvcore", "gankd")


@cache
def git_sha() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        sha = out.stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@cache
def versions() -> dict[str, str]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    out["python"] = platform.python_version()
    return out


#: instruction-set flags that decide which kernels oneDNN, MKL and ATen run (and so the last bits
#: of a float result): recorded so that a number can be traced to the code path that made it
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "avx_vnni")
#: environment variables that change those kernels (set to emulate another CPU)
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR",
              "OMP_NUM_THREADS")


@cache
def cpu_info() -> dict[str, Any]:
    """CPU model, its ISA flags among ``ISA_FLAGS``, torch's chosen CPU capability, and any
    kernel-selecting environment variables."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        capability = "unknown"
    return {"model": model, "machine": platform.machine(), "isa": [f for f in ISA_FLAGS if f in flags],
            "torch_capability": capability,
            "kernel_env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}}


def device_info(device: torch.device) -> dict[str, Any]:
    cpu = cpu_info()
    info: dict[str, Any] = {"type": device.type, "torch_threads": torch.get_num_threads(),
                            "cpu": cpu["model"], "cpu_isa": cpu["isa"],
                            "torch_cpu_capability": cpu["torch_capability"], "kernel_env": cpu["kernel_env"],
                            "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
