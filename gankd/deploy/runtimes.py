"""One interface over the runtimes a network is deployed on: ``load`` a network (or its exported
files), ``run`` it on a batch-1 input and get the output as a float32 numpy array. Threads are
fixed at load; nothing here times anything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn


class Runner(Protocol):
    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray: ...


class TorchRunner:
    """torch eager under ``inference_mode``, contiguous or channels_last memory; on ``device``
    (CPU, or CUDA with fp32 weights -- torch's default math, so TF32 convolutions where the GPU
    has them -- or with weights and activations in bf16). A CUDA run is host to host, as a
    deployed network is called: the input's copy in and the output's copy out are timed with
    it, and the copy out waits for the device. ``model`` itself is moved and cast (callers
    that keep using it pass a copy)."""

    def __init__(self, model: nn.Module, threads: int, channels_last: bool = False,
                 device: str = "cpu", bf16: bool = False) -> None:
        torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self.model = model.eval().to(self.device, self.dtype)
        if hasattr(model, "set_random_noise"):
            model.set_random_noise(False)
        self.channels_last = channels_last
        if channels_last:
            # 4-d tensors only: Module.to(memory_format=) also converts 5-d ones and fails on
            # them (StyleGAN2's modulated weight is (1, out, in, k, k))
            for t in [*self.model.parameters(), *self.model.buffers()]:
                if t.dim() == 4:
                    t.data = t.data.contiguous(memory_format=torch.channels_last)

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        args = [torch.from_numpy(x).to(self.device, self.dtype) for x in inputs]
        if self.channels_last:
            args = [a.contiguous(memory_format=torch.channels_last) if a.dim() == 4 else a for a in args]
        with torch.inference_mode():
            return self.model(*args).float().contiguous().cpu().numpy()


class OnnxRunner:
    """ONNX Runtime's CPU execution provider, intra-op threads fixed, inter-op 1; or its CUDA
    provider, which must be the one that runs: ONNX Runtime falls back to the CPU without a word
    when it cannot start CUDA, and that latency would be reported as the GPU's."""

    def __init__(self, path: Path, threads: int, cuda: bool = False) -> None:
        import onnxruntime as ort

        want = "CUDAExecutionProvider" if cuda else "CPUExecutionProvider"
        if want not in ort.get_available_providers():
            raise RuntimeError(f"onnxruntime {ort.__version__} has no {want} here (it has "
                               f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu "
                               "in place of onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=[want])
        if self.session.get_providers()[0] != want:
            raise RuntimeError(f"onnxruntime did not start {want} (session providers: "
                               f"{', '.join(self.session.get_providers())})")
        self.names = [i.name for i in self.session.get_inputs()]

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return self.session.run(None, dict(zip(self.names, inputs)))[0]


class NcnnRunner:
    """ncnn with the pnnx-converted param/bin (fp32 weights), ``threads`` threads, fp16 storage
    and arithmetic off so its numbers are comparable with torch's."""

    def __init__(self, param: Path, bin_path: Path, threads: int) -> None:
        import ncnn

        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        self.net.opt.use_fp16_packed = False
        self.net.opt.use_fp16_storage = False
        self.net.opt.use_fp16_arithmetic = False
        self.net.opt.use_bf16_storage = False
        self.net.opt.use_vulkan_compute = False
        if self.net.load_param(str(param)) or self.net.load_model(str(bin_path)):
            raise RuntimeError(f"ncnn could not load {param} / {bin_path}")
        self._ncnn = ncnn

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        with self.net.create_extractor() as ex:
            for i, x in enumerate(inputs):
                arr = np.ascontiguousarray(x[0] if x.ndim == 4 else x.reshape(-1), dtype=np.float32)
                ex.input(f"in{i}", self._ncnn.Mat(arr).clone())
            _, out = ex.extract("out0")
            return np.array(out)[None]


def load(runtime: str, model: nn.Module | None, files: dict[str, str], threads: int) -> Any:
    """A runner of ``runtime`` (``gankd.deploy.RUNTIMES``) for ``model`` (torch) or its exported
    ``files``."""
    if runtime in ("torch", "torch_cl", "torch_cuda", "torch_cuda_bf16"):
        assert model is not None
        device = "cuda" if runtime.startswith("torch_cuda") else "cpu"
        return TorchRunner(model, threads, channels_last=runtime == "torch_cl", device=device,
                           bf16=runtime == "torch_cuda_bf16")
    if runtime in ("onnxruntime", "onnxruntime_cuda"):
        return OnnxRunner(Path(files["onnx"]), threads, cuda=runtime == "onnxruntime_cuda")
    if runtime == "ncnn":
        return NcnnRunner(Path(files["ncnn_param"]), Path(files["ncnn_bin"]), threads)
    raise ValueError(f"unknown runtime {runtime!r}")
