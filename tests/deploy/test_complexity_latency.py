"""MACs/params with fvcore against closed forms and the published Real-ESRGAN numbers; latency records."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from gankd.config import from_mapping, load_yaml
from gankd.metrics.complexity import Complexity, count, count_entry
from gankd.metrics.evaluate import BicubicUpsampler
from gankd.metrics.latency import Latency, measure
from gankd.models import zoo


def zoo_entry(name: str) -> zoo.ZooEntry:
    """One entry of zoo.yaml, validated by itself.

    ``zoo.get`` validates every entry at once, GCFSR ones included, whose architecture lives in
    another module; these tests must not depend on it.
    """
    raw = load_yaml(zoo.ZOO_FILE)
    return dataclasses.replace(from_mapping(zoo.ZooEntry, raw[name], f"zoo.yaml: {name}"), name=name)


def conv_macs(cin: int, cout: int, k: int, hout: int, wout: int, groups: int = 1) -> int:
    return cout * cin * k * k * hout * wout // groups


@pytest.mark.parametrize(("cin", "cout", "k", "stride", "pad", "groups", "h", "w"), [
    (3, 16, 3, 1, 1, 1, 31, 17),
    (8, 12, 5, 2, 2, 4, 33, 29),
    (6, 6, 3, 1, 0, 6, 20, 24),  # depthwise
    (4, 10, 1, 1, 0, 2, 9, 7),
])
def test_conv_macs_equal_closed_form(cin: int, cout: int, k: int, stride: int, pad: int, groups: int,
                                     h: int, w: int) -> None:
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups)
    hout = (h + 2 * pad - k) // stride + 1
    wout = (w + 2 * pad - k) // stride + 1
    c = count(conv, torch.rand(1, cin, h, w))
    assert c.macs == conv_macs(cin, cout, k, hout, wout, groups)
    assert c.params == cout * cin // groups * k * k + cout
    assert c.uncounted == {}


def test_linear_and_batch_scale_linearly() -> None:
    lin = nn.Linear(10, 20)
    assert count(lin, torch.rand(4, 10)) == Complexity(params=220, macs=4 * 10 * 20)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count(conv, torch.rand(2, 3, 8, 8)).macs == 2 * count(conv, torch.rand(1, 3, 8, 8)).macs


def test_bicubic_baseline_costs_four_macs_per_output_and_pass() -> None:
    c = count(BicubicUpsampler(4), torch.rand(1, 3, 64, 48))
    assert c.params == 0
    # rows first (at input width), then columns; fvcore reads einsum costs from numpy's
    # einsum_path printout, which has 4 significant digits
    assert c.macs == pytest.approx(3 * (256 * 48 * 4 + 256 * 192 * 4), rel=1e-3)
    assert set(c.uncounted) == {"aten::index_select", "aten::lift_fresh"}  # gathers and constants


class NoisyNet(nn.Module):
    """A conv net with GCFSR's optional noise switch, an element-wise residual and an activation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.noise = True
        self.seen: list[tuple[bool, bool]] = []  # (training, noise) at each forward

    def set_random_noise(self, enabled: bool) -> None:
        self.noise = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, self.noise))
        y = self.conv(x)
        if self.noise:
            y = y + torch.randn_like(y)
        return nn.functional.leaky_relu(y, 0.2) + x


def test_count_uses_eval_mode_without_noise_and_reports_uncounted_ops() -> None:
    net = NoisyNet().train()
    c = count(net, (torch.rand(1, 3, 10, 12),))
    assert c.macs == conv_macs(3, 3, 3, 10, 12)
    assert set(net.seen) == {(False, False)}  # fvcore traced the evaluation forward
    assert set(c.uncounted) == {"aten::leaky_relu", "aten::add"}
    assert net.training and net.noise  # training state (and its noise) restored


def test_count_is_quiet(recwarn: pytest.WarningsRecorder, caplog: pytest.LogCaptureFixture) -> None:
    count(NoisyNet(), torch.rand(1, 3, 8, 8))
    assert not [w for w in recwarn if "fvcore" in str(w.filename) or "jit" in str(w.message)]
    assert not [r for r in caplog.records if r.name.startswith("fvcore")]


@pytest.mark.slow
def test_realesrgan_teacher_matches_published_size() -> None:
    c = count_entry(zoo_entry("realesrgan_x4plus"))
    assert round(c.params / 1e6, 2) == 16.70
    assert c.macs == pytest.approx(73.4e9, rel=0.005)
    assert set(c.uncounted) == {"aten::add", "aten::leaky_relu_", "aten::mul"}  # residual scaling


def test_unet_discriminator_params_and_student_scaling() -> None:
    d = count_entry(zoo_entry("realesrgan_unet_d"), size=64)
    assert round(d.params / 1e6, 2) == 4.38
    # MACs grow with the pixel count: twice the side, 4x the MACs
    assert count_entry(zoo_entry("realesrgan_unet_d"), size=128).macs == 4 * d.macs
    student = zoo.student(zoo_entry("realesrgan_x4plus"), 0.25, {"num_block": 2})
    s = count_entry(student, size=16)
    model = student.build()
    assert s.params == sum(p.numel() for p in model.parameters()) < 16.70e6 / 16


# ------------------------------------------------------------------------------------------ latency


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(16, 3, 3, padding=1))


def test_latency_record() -> None:
    net = small_net()
    before = torch.get_num_threads()
    lat = measure(net, torch.rand(1, 3, 32, 32), warmup=2, repeats=7, threads=1, device="cpu")
    assert torch.get_num_threads() == before  # restored
    assert lat.threads == 1 and lat.repeats == 7 and lat.device == "cpu" and lat.dtype == "float32"
    assert lat.input_shapes == ((1, 3, 32, 32),)
    assert lat.median_ms > 0 and lat.iqr_ms >= 0
    assert 0 < lat.p10 <= lat.median_ms <= lat.p90
    record = json.loads(json.dumps(lat.to_dict()))
    assert set(record) == {f.name for f in dataclasses.fields(Latency)}


def test_latency_runs_the_evaluation_forward_and_restores_state() -> None:
    net = NoisyNet().train()
    lat = measure(net, [torch.rand(1, 3, 16, 16)], warmup=1, repeats=3, threads=None)
    assert len(net.seen) == 4 and set(net.seen) == {(False, False)}
    assert net.training and net.noise
    assert lat.threads == torch.get_num_threads()
    assert torch.is_grad_enabled()


def test_latency_threads_restored_after_a_failing_forward() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        measure(small_net(), torch.rand(1, 4, 8, 8), warmup=0, repeats=1, threads=1)
    assert torch.get_num_threads() == before


def test_latency_rejects_bad_arguments() -> None:
    net, x = small_net(), torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="repeats"):
        measure(net, x, warmup=0, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        measure(net, x, warmup=-1, repeats=1)
    with pytest.raises(ValueError, match="threads"):
        measure(net, x, warmup=0, repeats=1, threads=0)
    with pytest.raises(ValueError, match="is on cpu but the evaluation device is meta"):
        measure(net, x, warmup=0, repeats=1, device="meta")
