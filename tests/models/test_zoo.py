"""The model zoo: every entry is a config of real code and builds, runs and back-propagates."""

from __future__ import annotations

import pytest
import torch

from gankd.errors import ConfigError
from gankd.metrics.complexity import count_params
from gankd.models import MODELS, zoo
from gankd.paths import family_names

#: an entry whose smallest input is larger than this is built and counted only (GCFSR at 512 and
#: 1024, its discriminator at 512): a forward and backward would cost a unit test minutes
MAX_FORWARD_SIDE = 128
TEACHERS = sorted(name for name, e in zoo.entries().items() if e.role == "teacher")


def small_input(model: torch.nn.Module, entry: zoo.ZooEntry) -> tuple[torch.Tensor, ...]:
    """The cheapest input an entry takes: a 12-pixel LR for a generator, a 32-pixel image for a
    discriminator, or the one size a fixed-size architecture (GCFSR, StyleGAN2 D) accepts."""
    try:
        return model.example_inputs(1, 32 if entry.role == "discriminator" else 12)
    except ValueError:
        return model.example_inputs(1, entry.input)


@pytest.mark.parametrize("name", sorted(zoo.entries()))
def test_entry_builds_runs_and_backpropagates(name: str) -> None:
    entry = zoo.get(name)
    assert entry.arch in MODELS
    model = entry.build()
    inputs = small_input(model, entry)
    if inputs[0].shape[-1] > MAX_FORWARD_SIDE:
        assert count_params(model) > 1e6
        return
    out = model(*inputs)
    if entry.role == "discriminator":
        assert out.shape[0] == 1
    else:
        x = inputs[0]
        if getattr(model, "input_kind", "") == "noise":  # DCGAN: a noise vector in, its fixed size out
            side = entry.input
        else:
            side = x.shape[-1] * entry.kwargs.get("scale", 1)  # x4 from the LR (rrdbnet); else the same side
        assert out.shape == (1, 3, side, side)
    out.float().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads[:3])
    assert any(g.abs().sum() > 0 for g in grads if g is not None)


@pytest.mark.parametrize("teacher", TEACHERS)
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


def test_every_family_has_its_networks_and_every_entry_a_family() -> None:
    families = family_names()
    assert {"realesrgan", "gcfsr"} <= set(families)
    for name, entry in zoo.entries().items():
        assert entry.family in families, name
    for family in families:
        roles = {e.role for e in zoo.entries().values() if e.family == family}
        assert {"teacher", "discriminator"} <= roles, family


def test_unknown_family_in_the_zoo_names_the_family_files(tmp_path, monkeypatch) -> None:
    bad = tmp_path / "zoo.yaml"
    bad.write_text("x: {arch: rrdbnet, role: teacher, family: esrgan, kwargs: {}, input: 64}\n")
    monkeypatch.setattr(zoo, "ZOO_FILE", bad)
    zoo.entries.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"family in zoo.yaml: x .*'esrgan'; valid choices: "
                                              + ", ".join(family_names())):
            zoo.entries()
    finally:
        monkeypatch.undo()
        zoo.entries.cache_clear()


@pytest.mark.parametrize("name", sorted(zoo.entries()))
def test_entry_declares_what_gankd_takes_from_its_architecture(name: str) -> None:
    """``gankd.models``' protocol, so that a new family's architectures work everywhere without
    an isinstance check: width keys, example inputs, taps (generators), the penultimate layer and
    accepted sizes (discriminators)."""
    entry = zoo.get(name)
    with torch.device("meta"):  # names and attributes only
        model = entry.build()
    assert set(MODELS.get(entry.arch).width_keys) <= set(entry.kwargs)
    assert callable(getattr(model, "example_inputs", None))
    modules = dict(model.named_modules())
    if entry.role == "discriminator":
        assert model.penultimate in modules
        assert getattr(model, "fixed_input_size", None) or getattr(model, "input_multiple", None)
    else:
        taps = model.feature_taps(2)
        assert len(taps) == 2 and all(t in modules for t in taps)
