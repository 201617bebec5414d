"""The model zoo: every entry is a config of real code and builds, runs and back-propagates."""

from __future__ import annotations

import pytest
import torch

from gankd.errors import ConfigError
from gankd.metrics.complexity import count_params
from gankd.models import MODELS, zoo

# Entries too large for a forward in a unit test are built and counted only.
BUILD_ONLY = {"gcfsr_512", "gcfsr_512_blind", "gcfsr_1024", "gcfsr_d_512"}


def small_input(model: torch.nn.Module, entry: zoo.ZooEntry) -> tuple[torch.Tensor, ...]:
    if entry.arch == "rrdbnet":
        return model.example_inputs(1, 12)
    if entry.arch == "unet_d":
        return model.example_inputs(1, 32)
    return model.example_inputs(1, entry.kwargs["out_size"])  # gcfsr, stylegan2_d: fixed size


@pytest.mark.parametrize("name", sorted(zoo.entries()))
def test_entry_builds_runs_and_backpropagates(name: str) -> None:
    entry = zoo.get(name)
    assert entry.arch in MODELS
    model = entry.build()
    if name in BUILD_ONLY:
        assert count_params(model) > 1e6
        return
    inputs = small_input(model, entry)
    out = model(*inputs)
    if entry.role == "discriminator":
        assert out.shape[0] == 1
    else:
        x = inputs[0]
        side = x.shape[-1] * (entry.kwargs.get("scale", 1) if entry.arch == "rrdbnet" else 1)
        assert out.shape == (1, 3, side, side)
    out.float().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads[:3])
    assert any(g.abs().sum() > 0 for g in grads if g is not None)


@pytest.mark.parametrize("teacher", ["realesrgan_x4plus", "gcfsr_512", "gcfsr_64"])
@pytest.mark.parametrize("r", zoo.RATIOS)
def test_students_at_paper_ratios_build_and_shrink(teacher: str, r: float) -> None:
    t_entry = zoo.get(teacher)
    s_entry = zoo.student(teacher, r)
    assert s_entry.role == "student" and s_entry.ratio == r and s_entry.weights is None
    cls = MODELS.get(t_entry.arch)
    for key in cls.width_keys:
        assert s_entry.kwargs[key] == pytest.approx(t_entry.kwargs[key] * r, abs=0.5)
    with torch.device("meta"):  # shapes only: the 512 configs are large
        t_params = count_params(t_entry.build())
        s_params = count_params(s_entry.build())
    assert s_params < t_params


def test_realesrgan_teacher_and_d_sizes() -> None:
    with torch.device("meta"):
        g = zoo.get("realesrgan_x4plus").build()
        d = zoo.get("realesrgan_unet_d").build()
    assert count_params(g) == pytest.approx(16.70e6, rel=0.005)
    assert count_params(d) == pytest.approx(4.38e6, rel=0.005)


def test_gcfsr_512_teacher_size() -> None:
    with torch.device("meta"):
        g = zoo.get("gcfsr_512").build()
    assert count_params(g) == pytest.approx(62.35e6, rel=0.005)


def test_realesrgan_student_widths() -> None:
    s = zoo.student("realesrgan_x4plus", 0.125, {"num_block": 6})
    assert s.kwargs["num_feat"] == 8 and s.kwargs["num_grow_ch"] == 4 and s.kwargs["num_block"] == 6
    assert s.name == "realesrgan_x4plus@r0.125,num_block=6"


def test_bad_zoo_requests_name_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"valid choices:.*realesrgan_x4plus"):
        zoo.get("realesrgan_x8")
    with pytest.raises(ConfigError, match=r"num_blocks.*valid choices"):
        zoo.student("realesrgan_x4plus", 0.25, {"num_blocks": 4})
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        zoo.student("realesrgan_x4plus", 1.5)
