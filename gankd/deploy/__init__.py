"""Deployment: a generator exported to the runtimes devices run (ONNX Runtime, ncnn via pnnx),
each export checked against torch's own output, and its latency measured per runtime.

Like ``models`` and ``metrics`` this layer judges any network and knows nothing of training: the
bench composes it into runs (``gankd export``). ``runtimes`` wraps each runtime behind one small
interface, ``export`` writes and checks the files (cached by the weights' sha256: the teacher is
exported once for every student), ``latency`` times each runtime in a process of its own so that
one runtime's thread pools and allocator never colour another's numbers.
"""

from __future__ import annotations

#: the CPU runtimes latency is measured on, in report order: torch eager (contiguous and
#: channels_last memory), ONNX Runtime's CPU provider, ncnn (pnnx-converted, fp32 weights)
CPU_RUNTIMES = ("torch", "torch_cl", "onnxruntime", "ncnn")
#: timed as well wherever torch sees a CUDA device: torch eager with fp32 weights (its default
#: math: TF32 convolutions on GPUs that have them) and in bf16 (weights and activations), ONNX
#: Runtime's CUDA provider on the checked ONNX file (onnxruntime-gpu, its default options)
CUDA_RUNTIMES = ("torch_cuda", "torch_cuda_bf16", "onnxruntime_cuda")
RUNTIMES = CPU_RUNTIMES + CUDA_RUNTIMES
#: runtimes that run an exported file (checked against torch before they are timed)
EXPORTED = ("onnxruntime", "ncnn")
#: the export each CUDA runtime runs, where it runs one
EXPORT_OF = {"onnxruntime_cuda": "onnxruntime"}
#: largest |torch - runtime| allowed on an fp32 export, on outputs in [0, 1]
PARITY_TOLERANCE = 1e-4
