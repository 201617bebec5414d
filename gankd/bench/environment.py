"""What a result records about where it was produced: git sha, library versions, device."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from importlib import metadata
from typing import Any

import torch

from gankd.hardware import cpu_info
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
