"""What a number records about the CPU it was measured on: the model, the instruction sets that
pick the kernels oneDNN, MKL and ATen run, and the environment variables that override them."""

from __future__ import annotations

import os
import platform
from functools import cache
from typing import Any

import torch

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


#: oneDNN's AVX-512 ISA tiers (its ``cpu_isa_t``: avx512_core, _vnni, _bf16, _fp16, _amx), highest
#: first, by the /proc/cpuinfo flag that marks each: oneDNN picks JIT kernels and their blocking per
#: tier, so one tier's machines share last bits that two tiers' do not
ONEDNN_TIERS = (("amx_tile", "AMX"), ("avx512_fp16", "FP16"), ("avx512_bf16", "BF16"),
                ("avx512_vnni", "VNNI"))


def cpu_family(info: dict[str, Any] | None = None) -> str:
    """``"<vendor> <torch capability>[-<oneDNN tier>]"``, e.g. ``"AMD AVX2"``, ``"AMD AVX512-BF16"``:
    machines of one family run the same kernels and agree to the last bits far more closely than
    two families do (measured for ``gankd regress``: results/baselines/smoke.spread.json), so each
    gets its own baseline values. The tier splits AVX-512 machines: a Sapphire Rapids Xeon (AMX) and
    an older Xeon (VNNI), both torch capability AVX512, differ by 0.07 dB PSNR on a smoke run (a
    fresh clone's CI, 2026-12-06), where each one's own variants agree within 0.01. ``info``
    without ``isa`` (a run record's device) gives the family without its tier."""
    info = info or cpu_info()
    model = str(info.get("model", ""))
    vendor = next((v for v in ("AMD", "Intel") if v.lower() in model.lower()), info.get("machine", "unknown"))
    capability = str(info.get("torch_capability", "unknown"))
    family = f"{vendor} {capability}"
    isa = set(info.get("isa") or ())
    tier = next((name for flag, name in ONEDNN_TIERS if flag in isa), None)
    if capability == "AVX512" and tier:
        family += f"-{tier}"
    # kernels limited by environment (ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU) are neither this
    # CPU's family nor the emulated one's: measured, they put 31 smoke metrics outside the AVX-512
    # AMD's own tolerances, so such a run is a family of its own (unmeasured: cross-family values)
    isa_env = sorted(f"{k}={v}" for k, v in (info.get("kernel_env") or {}).items() if k != "OMP_NUM_THREADS")
    return f"{family} ({', '.join(isa_env)})" if isa_env else family


def device_family(device: dict[str, Any]) -> str:
    """The machine a record's numbers were made on, from its ``device`` (``environment.device_info``):
    the GPU's name, the CPU family (without its oneDNN tier, as the run records have always been
    grouped), or "" where the record names no device."""
    if device.get("type") == "cuda":
        return str(device.get("name", "cuda"))
    if "cpu" not in device:
        return ""
    return cpu_family({"model": device["cpu"],
                       "torch_capability": device.get("torch_cpu_capability", "unknown")})
