"""A results tree written the way gankd.bench.run writes one (metrics.json per run, reference
records and sample PNGs), with known numbers, so the leaderboard and the report can be checked
without training anything."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gankd import atomic
from gankd.images import png_bytes
from gankd.results import store
from gankd.results.record import RunRecord

SUITE = "synth"
EVALSET = "builtin-eval-abc123"
CROPS = ("astronaut#0", "coffee#1")
HR_SIDE = 128  # larger than the grid's 96 px crop, so the crop is a real centre crop
SCALE = 4

#: per model -> ratio -> method -> seed -> psnr (None: the run failed). Other metrics derive from it.
PLAN: dict[str, dict[float, dict[str, dict[int, float | None]]]] = {
    "realesrgan": {
        0.25: {
            "scratch": {0: 24.0, 1: 24.2, 2: 24.1},
            "mse": {0: 24.5, 1: 24.6, 2: 24.7},  # +0.5 on every seed: significant
            "sdakd": {0: 24.3, 1: 23.9, 2: 24.2},  # +0.3 -0.3 +0.1: within noise
            "akdg": {0: None, 1: 24.4, 2: 24.5},  # seed 0 failed: n=2, pairs on seeds 1 and 2
            "dcd": {0: None, 1: None, 2: None},  # every seed failed
        },
        0.5: {
            "scratch": {0: 25.0, 1: 25.1},
            "sdakd": {0: 25.4, 1: 25.6},
        },
    },
    "gcfsr": {
        0.25: {
            "scratch": {0: 22.0},
            "sdakd": {0: 22.5},  # one seed: noise unknown
        },
    },
}
TEACHER_PSNR = {"realesrgan": 26.0, "gcfsr": 23.5}
BICUBIC_PSNR = {"realesrgan": 23.0, "gcfsr": 21.0}
TEACHER_PARAMS = 16.7e6
TEACHER_MACS = 73.4e9
ERROR = "non-finite generator loss 'g/gan' at step 4"


def metrics_for(psnr: float) -> dict[str, float]:
    """Every quality metric, monotone in PSNR so the best method is the same for all of them."""
    return {"psnr": psnr, "ssim": 0.5 + psnr / 100, "lpips": 0.6 - psnr / 100, "fid": 200 - 4 * psnr,
            "kid": 0.2 - psnr / 200, "niqe": 8.0 - psnr / 5, "fid_patches": 64.0}


def student_cost(ratio: float) -> tuple[float, float]:
    return TEACHER_PARAMS * ratio, TEACHER_MACS * ratio


def image(seed: int, side: int = HR_SIDE) -> np.ndarray:
    """A distinct, smooth-ish RGB image per seed (uint8, side x side)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    base = np.stack([np.sin(6 * x + seed), np.cos(5 * y - seed), np.sin(4 * (x + y) + 2 * seed)], -1)
    noise = rng.normal(0, 0.15, (side, side, 3))
    return ((base + noise) * 60 + 128).clip(0, 255).astype(np.uint8)


def sample_seed(model: str, who: str, name: str, run_seed: int | None = None) -> int:
    """Which picture a (source, crop) pair gets: every source and seed a different one."""
    return zlib.crc32(repr((model, who, name, run_seed)).encode())


def deploy_record(ms: float) -> dict[str, Any]:
    """Deployment latency as gankd export records it: torch and ONNX Runtime at two sizes, ONNX
    Runtime faster (Real-ESRGAN only: GCFSR records none)."""
    timing = {rt: {str(z): {"median_ms": ms * f * z / 64, "iqr_ms": 0.1} for z in (32, 64)}
              for rt, f in (("torch", 1.0), ("onnxruntime", 0.7))}
    return {"latency": timing, "exports": {"onnxruntime": {"ok": True, "max_abs_diff": 2e-7}}}


def run_record(model: str, ratio: float, method: str, seed: int, psnr: float | None,
               *, wall_s: float = 90.0, missing: dict[str, str] | None = None) -> dict[str, Any]:
    params, macs = student_cost(ratio)
    record: dict[str, Any] = {
        "suite": SUITE, "model": model, "method": method, "ratio": ratio, "seed": seed, "data": "builtin",
        "teacher": f"{model}_teacher", "teacher_source": "synthetic", "student": f"{model}_r{ratio:g}",
        "perceptual_network": "vgg19", "git_sha": "0123456789abcdef",
        "device": {"type": "cpu", "cpu": "x86_64", "cpu_count": 2, "torch_threads": 2},
        "history": [{"step": float(s), "g/l1": 1.0 / s, "g/gan": 0.1, "d/real": 0.7, "d/fake": 0.6,
                     "stage": "main"} for s in (2, 4, 6)],
        "val_history": [],
    }
    if psnr is None:
        return {**record, "status": store.RunStatus.FAILED, "error": ERROR, "failed_step": 4}
    metrics = metrics_for(psnr)
    for k in missing or {}:
        metrics.pop(k, None)
    latency = 20.0 * ratio + 0.01 * seed
    return {
        **record, "status": store.RunStatus.DONE, "metrics": metrics, "missing_metrics": missing or {},
        "eval": {"images": len(CROPS), "evalset": EVALSET, "wall_time_s": 3.0},
        "params": params, "macs": macs, "latency": {"median_ms": latency},
        "speedup_vs_teacher": 40.0 / latency,
        "train": {"steps": 6, "wall_time_s": wall_s + seed},
        "deploy": deploy_record(latency) if model == "realesrgan" else {},
    }


NIQE_MISSING = {"niqe": "needs at least two 96x96 blocks; images are 128x128"}


@dataclass
class Tree:
    results: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    run_dirs: dict[tuple, Path] = field(default_factory=dict)  # (model, ratio, method, seed) -> folder


def write_run(results: Path, record: dict[str, Any], samples: bool = True) -> Path:
    run_dir = (store.runs_root(results) / record["suite"] / record["model"] / f"r{record['ratio']:g}"
               / record["method"] / f"seed{record['seed']}")
    store.write_metrics(run_dir, RunRecord.from_dict(record))
    if samples and record["status"] == store.RunStatus.DONE:
        for name in CROPS:
            who = sample_seed(record["model"], record["method"], name, record["seed"])
            atomic.write_bytes(run_dir / "samples" / f"{name}.png", png_bytes(image(who)))
    return run_dir


def write_references(results: Path, model: str, evalset: str = EVALSET) -> Path:
    folder = store.runs_root(results) / SUITE / model / "reference" / evalset
    for role, psnr in (("teacher", TEACHER_PSNR[model]), ("bicubic", BICUBIC_PSNR[model])):
        record: dict[str, Any] = {
            "suite": SUITE, "model": model, "ratio": None, "role": role, "method": role, "seed": None,
            "status": store.RunStatus.DONE, "evalset": evalset, "metrics": metrics_for(psnr),
            "missing_metrics": {}, "samples_dir": "somewhere/else",  # the store reports where it is
        }
        if role == "teacher":
            record.update(params=TEACHER_PARAMS, macs=TEACHER_MACS, latency={"median_ms": 40.0},
                          speedup_vs_teacher=1.0, deploy=deploy_record(40.0) if model == "realesrgan" else {})
        else:
            record["latency"] = {"median_ms": 0.5}
        atomic.write_json(folder / f"{role}.json", record)
        for name in CROPS:
            pic = image(sample_seed(model, role, name))
            atomic.write_bytes(folder / role / f"{name}.png", png_bytes(pic))
    for name in CROPS:
        hr = image(sample_seed(model, "hr", name))
        atomic.write_bytes(folder / "hr" / f"{name}.png", png_bytes(hr))
        side = HR_SIDE // SCALE
        lr = hr.reshape(side, SCALE, side, SCALE, 3).mean((1, 3)).round().astype(np.uint8)
        atomic.write_bytes(folder / "lr" / f"{name}.png", png_bytes(lr))
    return folder


def make_tree(results: Path, models: tuple[str, ...] = tuple(PLAN)) -> Tree:
    """The PLAN (of ``models``) on disk: runs, failed runs, references with their crops."""
    tree = Tree(results)
    for model in models:
        ratios = PLAN[model]
        write_references(results, model)
        for ratio, methods in ratios.items():
            for method, seeds in methods.items():
                for seed, psnr in seeds.items():
                    # NIQE cannot judge these small images in any run of realesrgan r0.25 sdakd
                    niqe_fails = (model, ratio, method) == ("realesrgan", 0.25, "sdakd")
                    missing = NIQE_MISSING if niqe_fails else None
                    rec = run_record(model, ratio, method, seed, psnr, missing=missing)
                    tree.records.append(rec)
                    tree.run_dirs[(model, ratio, method, seed)] = write_run(results, rec)
    return tree
