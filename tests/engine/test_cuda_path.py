"""The CUDA path of a training step (bf16 autocast, channels_last, fp32 discriminator heads), run
for every method on tiny networks: marked ``cuda``, so it runs where torch sees a GPU
(``make gpu-check``) and is skipped elsewhere. The same checks run on the CPU in fp32 (the
Trainer trains in fp32 there), so the checks themselves are exercised on every machine."""

from __future__ import annotations

import pytest
import torch

from gankd.methods import benchmark_methods

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
LR = 1e-3


def _trainer(method: str, device: str, bf16: bool, steps: int = 2):
    from conftest import TINY_D, TINY_TEACHER, SyntheticPool, tiny_overrides, tiny_student

    from gankd.bench.compose import TeacherNet, build_trainer, seeded_build
    from gankd.engine.config import RecipeConfig, TrainConfig
    from gankd.engine.sampler import PoolSampler
    from gankd.methods import method_config

    train = TrainConfig(steps=steps, batch_size=2, log_every=1, ckpt_every=0, device=device, bf16=bf16,
                        channels_last=bf16)
    return build_trainer(
        student=seeded_build(tiny_student(method, "realesrgan"), 0),
        teacher=TeacherNet(seeded_build(TINY_TEACHER, 123), "tiny"), d_entry=TINY_D,
        recipe=RecipeConfig(perceptual_layers={"conv1_2": 0.1, "conv2_2": 0.1}, lr_g=LR, lr_d=LR),
        method=method, method_cfg=method_config(method, tiny_overrides(method)), train=train,
        sampler=PoolSampler(SyntheticPool(n=4), 2, seed=0), ratio=0.5, seed=0, progress=False)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", benchmark_methods())
def test_every_method_steps_on_the_device_in_its_precision(method, device, one_thread):
    tr = _trainer(method, device, bf16=True)
    assert tr.amp == (device == "cuda")  # bf16 autocast is the CUDA path only
    logits: list[torch.dtype] = []
    for d in tr.method.discriminators.values():
        d.register_forward_hook(lambda m, i, out: logits.append(out.dtype))
    before = {k: v.detach().clone().cpu() for k, v in tr.student.state_dict().items()}
    for _ in range(2):
        terms = tr.train_step()
        assert all(torch.isfinite(torch.tensor(v)) for v in terms.values()), terms
    assert all(p.device.type == device for p in tr.student.parameters())
    after = tr.student.state_dict()
    moved = max(float((after[k].float().cpu() - v.float()).abs().max()) for k, v in before.items())
    assert moved > LR / 10
    assert logits and set(logits) == {torch.float32}  # the D heads stay fp32 under autocast


@pytest.mark.cuda
@pytest.mark.parametrize("method", ["scratch", "mse"])
def test_a_cuda_fp32_step_agrees_with_the_cpu_step(method, one_thread, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)  # fp32 means fp32 here
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cpu, gpu = _trainer(method, "cpu", bf16=False), _trainer(method, "cuda", bf16=False)
    a, b = cpu.train_step(), gpu.train_step()
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert b[k] == pytest.approx(v, rel=1e-3, abs=1e-5), k
