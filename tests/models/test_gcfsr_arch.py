"""GCFSR generator and StyleGAN2 discriminator: pure ops, checkpoint layout, behaviour, sizes.

Facts about the authors' code live in tests/data (established once from
hejingwenhejingwen/GCFSR's basicsr/archs/gcfsr_arch.py, its compiled ops replaced by BasicSR's
``upfirdn2d_native`` and a plain bias + leaky-ReLU):
- gcfsr_original_keys.json: state_dict {key: shape} and parameter counts at narrow 1;
- gcfsr_original_golden.json: outputs of the original classes for seeded weights and inputs.
"""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
import torch
from conftest import TEST_DATA

import gankd._basicsr  # noqa: F401  (BasicSR needs gankd's torchvision alias before its first import)
from gankd.models import MODELS, build
from gankd.models.gcfsr_arch import GCFSR, StyleGAN2D, default_cond_norm, gcfsr_condition
from gankd.models.stylegan2_parts import fused_leaky_relu, make_resample_kernel, upfirdn2d

DATA = TEST_DATA
RATIOS = (0.5, 0.25, 0.125)
SMALL = ((32, 0.125), (64, 0.25))  # the scaled-down teachers of the smoke and cpu suites


@pytest.fixture(scope="module")
def original_keys() -> dict:
    return json.loads((DATA / "gcfsr_original_keys.json").read_text())


def _meta(arch: str, **kwargs) -> torch.nn.Module:
    with torch.device("meta"):
        return build(arch, **kwargs)


def _shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def _noisy(model: GCFSR) -> GCFSR:
    # noise strengths start at 0, which would hide every noise effect
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".weight") and p.shape == (1,):
                p.fill_(0.5)
    return model


# --- pure ops ---------------------------------------------------------------------------------


def _naive_upfirdn(x: np.ndarray, k: np.ndarray, up: int, down: int, p0: int, p1: int) -> np.ndarray:
    """Definition: zero-insert, pad (negative = crop), true convolution, subsample."""
    n, c, h, w = x.shape
    z = np.zeros((n, c, h * up, w * up))
    z[:, :, ::up, ::up] = x
    z = np.pad(z, ((0, 0), (0, 0), (max(p0, 0), max(p1, 0)), (max(p0, 0), max(p1, 0))))
    z = z[:, :, max(-p0, 0):z.shape[2] - max(-p1, 0), max(-p0, 0):z.shape[3] - max(-p1, 0)]
    kh, kw = k.shape
    out = np.zeros((n, c, z.shape[2] - kh + 1, z.shape[3] - kw + 1))
    for m in range(out.shape[2]):
        for q in range(out.shape[3]):
            for a in range(kh):
                for b in range(kw):
                    out[:, :, m, q] += z[:, :, m + a, q + b] * k[kh - 1 - a, kw - 1 - b]
    return out[:, :, ::down, ::down]


# (up, down, pad): GCFSR's three uses (ToRGB skip upsample, post-transposed-conv blur, pre-stride
# blur) plus asymmetric, cropping and up+down cases
UPFIRDN_CASES = [(2, 1, (2, 1)), (1, 1, (1, 1)), (1, 1, (2, 2)), (1, 2, (2, 2)), (2, 1, (0, -1)),
                 (3, 1, (1, 2)), (2, 2, (1, 1)), (1, 1, (-1, 3))]


@pytest.mark.parametrize(("up", "down", "pad"), UPFIRDN_CASES)
def test_upfirdn2d_matches_definition_and_basicsr_native(up: int, down: int, pad: tuple[int, int]) -> None:
    upfirdn2d_native = importlib.import_module("basicsr.ops.upfirdn2d.upfirdn2d").upfirdn2d_native
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    # 4x4, deliberately asymmetric so a missing flip shows
    k = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.3, 1.0, 4.0, 2.0],
                      [0.0, 1.0, -2.0, 1.0], [3.0, 6.0, 1.5, -3.0]], dtype=torch.float64)
    ours = upfirdn2d(x, k, up=up, down=down, pad=pad)
    native = upfirdn2d_native(x, k, up, up, down, down, pad[0], pad[1], pad[0], pad[1])
    naive = _naive_upfirdn(x.detach().numpy(), k.numpy(), up, down, *pad)
    assert ours.shape == native.shape == naive.shape
    np.testing.assert_allclose(ours.detach().numpy(), naive, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours, native, rtol=1e-12, atol=1e-12)
    # gradients too: the pure op is what training differentiates
    gy = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    (g_ours,) = torch.autograd.grad(ours, x, gy)
    (g_native,) = torch.autograd.grad(native, x, gy)
    torch.testing.assert_close(g_ours, g_native, rtol=1e-12, atol=1e-12)


def test_resample_kernel_is_normalised_outer_product() -> None:
    k = make_resample_kernel((1, 3, 3, 1))
    assert k.shape == (4, 4)
    assert k.sum().item() == pytest.approx(1.0)
    k1 = torch.tensor([1.0, 3, 3, 1])
    torch.testing.assert_close(k, torch.outer(k1, k1) / 64)


def test_fused_leaky_relu_is_bias_leaky_relu_gain() -> None:
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor([0.5, -1.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = x + bias.view(1, 4, 1, 1)
    expected = torch.where(y >= 0, y, 0.2 * y) * math.sqrt(2)
    ours = fused_leaky_relu(x, bias)
    torch.testing.assert_close(ours, expected)
    gy = torch.randn_like(ours)
    torch.testing.assert_close(torch.autograd.grad(ours, (x, bias), gy),
                               torch.autograd.grad(expected, (x, bias), gy))
    x, bias = x.detach().float(), bias.detach().float()
    x2 = torch.randn(5, 4)
    y2 = x2 + bias
    torch.testing.assert_close(fused_leaky_relu(x2, bias), torch.where(y2 >= 0, y2, 0.2 * y2) * math.sqrt(2))


# --- registry and the original's layout -------------------------------------------------------


def test_registered_with_protocol_attributes() -> None:
    assert MODELS.get("gcfsr") is GCFSR
    assert MODELS.get("stylegan2_d") is StyleGAN2D
    assert GCFSR.width_keys == ("narrow",) and StyleGAN2D.width_keys == ("narrow",)
    assert StyleGAN2D.penultimate == "final_linear.1"


@pytest.mark.parametrize(("arch", "original", "kwargs"), [
    ("gcfsr", "GCFSR", {}),
    ("gcfsr", "GCFSR_blind", {"blind": True}),
    ("stylegan2_d", "StyleGAN2Discriminator_no_std", {}),
])
@pytest.mark.parametrize("out_size", [512, 1024])
def test_state_dict_equals_original_and_loads_strictly(original_keys: dict, arch: str, original: str,
                                                       kwargs: dict, out_size: int) -> None:
    expected = original_keys[original][str(out_size)]
    model = _meta(arch, out_size=out_size, narrow=1.0, **kwargs)
    assert _shapes(model) == expected
    assert list(model.state_dict()) == list(expected)  # same order, as the original registers them
    n = sum(p.numel() for p in model.parameters())
    assert n == original_keys["num_params"][f"{original}/{out_size}"]
    # a checkpoint of exactly that structure loads strictly (shapes are checked on meta too)...
    ckpt = {k: torch.empty(s, device="meta") for k, s in expected.items()}
    model.load_state_dict(ckpt, strict=True, assign=True)
    # ...and one that differs anywhere does not
    bad = dict(ckpt)
    bad.pop(next(iter(bad)))
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict(bad, strict=True, assign=True)


def test_noise_buffers_kept_with_original_shapes(original_keys: dict) -> None:
    model = _meta("gcfsr", out_size=512)
    noise_keys = {k: v for k, v in original_keys["GCFSR"]["512"].items() if k.startswith("noises.")}
    assert len(noise_keys) == model.num_layers == 11
    assert noise_keys["noises.noise0"] == [1, 1, 4, 4]  # the original's bug: decoder starts at 16
    # fixed noise matches the real layer sizes and never enters a checkpoint
    sizes = [getattr(model, f"fixed_noise{i}").shape[-1] for i in range(model.num_layers)]
    assert sizes == [16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
    assert not any(k.startswith("fixed_noise") for k in model.state_dict())


def test_final_linear_width_follows_channels_at_4x4() -> None:
    teacher = _meta("gcfsr", out_size=512)
    assert teacher.final_linear.weight.shape[1] == 2 * 4 * 512  # the original's constant
    for narrow in (0.5, 0.25, 0.125):
        m = _meta("gcfsr", out_size=512, narrow=narrow)
        assert m.final_linear.weight.shape[1] == (int(512 * narrow) // 2) * 16
    assert _meta("gcfsr", out_size=512, blind=True).final_linear.weight.shape[1] == 4 * 4 * 512


@pytest.mark.slow
@pytest.mark.parametrize("case", range(4))
def test_outputs_equal_original_code(case: int) -> None:
    golden = json.loads((DATA / "gcfsr_original_golden.json").read_text())
    c = golden["cases"][case]
    model = build(c["arch"], **c["kwargs"], signed_io=True).eval()  # the original's [-1, 1]
    g = torch.Generator().manual_seed(c["weight_seed"])
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict({k: torch.randn(shapes[k], generator=g) for k in sorted(shapes)}, strict=True)
    g = torch.Generator().manual_seed(c["input_seed"])
    size = c["kwargs"]["out_size"]
    x = torch.rand(2, 3, size, size, generator=g) * 2 - 1
    with torch.no_grad():
        if c["arch"] == "gcfsr":
            noise = [torch.randn(1, 1, r, r, generator=g)
                     for r in (16 * 2 ** ((i + 1) // 2) for i in range(model.num_layers))]
            out = model(x, torch.tensor(c["in_size"]), noise=noise)
        else:
            out = model(x)
    expected = torch.tensor(c["output"]).view(c["output_shape"])
    assert out.shape == expected.shape
    scale = expected.abs().max().item()
    assert scale > 0.1  # non-trivial reference
    torch.testing.assert_close(out, expected, rtol=0, atol=2e-5 * scale + 1e-5)


# --- condition --------------------------------------------------------------------------------


def test_condition_convention() -> None:
    assert default_cond_norm(512) == 32 and default_cond_norm(1024) == 64
    c = gcfsr_condition(8, batch=3, cond_norm=32.0)
    assert c.shape == (3, 1) and c.dtype == torch.float32
    assert torch.equal(c, torch.full((3, 1), 0.25))
    per_sample = gcfsr_condition([4, 32], batch=2, cond_norm=32.0)
    assert per_sample.flatten().tolist() == [0.125, 1.0]
    assert torch.equal(GCFSR(out_size=32, narrow=0.125).condition(4, 2), torch.full((2, 1), 2.0))
    with pytest.raises(ValueError, match="3 scales for a batch of 2"):
        gcfsr_condition([1, 2, 3], batch=2, cond_norm=32.0)
    with pytest.raises(ValueError, match="scales must be > 0"):
        gcfsr_condition(0, batch=1, cond_norm=32.0)


def test_condition_controls_output_per_sample() -> None:
    torch.manual_seed(0)
    model = _noisy(GCFSR(out_size=32, narrow=0.125)).eval()
    model.set_random_noise(False)
    x = torch.rand(1, 3, 32, 32).repeat(2, 1, 1, 1) * 2 - 1
    with torch.no_grad():
        y = model(x, model.condition([4, 16], 2))
        y4 = model(x[:1], model.condition(4, 1))
        broadcast = model(x, model.condition(4, 1))  # a (1, 1) condition serves the whole batch
    assert not torch.allclose(y[0], y[1])
    torch.testing.assert_close(y[:1], y4)
    torch.testing.assert_close(broadcast[1:], y4)


def test_blind_ignores_condition_and_bad_inputs_are_named() -> None:
    blind = GCFSR(out_size=32, narrow=0.125, blind=True).eval()
    blind.set_random_noise(False)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(blind(x), blind(x, torch.tensor([[0.1]])))
    model = GCFSR(out_size=32, narrow=0.125)
    with pytest.raises(ValueError, match="needs in_size"):
        model(x)
    with pytest.raises(ValueError, match=r"in_size must have shape \(1, 1\)"):
        model(x, torch.ones(1))
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 3, 32, 32\)"):
        model(torch.rand(1, 3, 16, 16), torch.ones(1, 1))
    with pytest.raises(ValueError, match="out_size must be a power of two"):
        GCFSR(out_size=48)
    with pytest.raises(ValueError, match="fewer than 2 channels"):
        GCFSR(out_size=512, narrow=1 / 64)
    with pytest.raises(ValueError, match="takes inputs at its output size"):
        model.example_inputs(1, 64)


# --- noise --------------------------------------------------------------------------------------


def test_noise_switch() -> None:
    torch.manual_seed(0)
    model = _noisy(GCFSR(out_size=32, narrow=0.125)).eval()
    x, cond = model.example_inputs(2, 32)
    with torch.no_grad():
        model.set_random_noise(False)
        a, b = model(x, cond), model(x, cond)
        model.set_random_noise(True)
        c, d = model(x, cond), model(x, cond)
    assert torch.equal(a, b)
    assert not torch.allclose(c, d)
    assert not torch.allclose(a, c)
    # the fixed maps are the same in every instance (teacher, student, reloaded copy)
    other = GCFSR(out_size=32, narrow=0.0625)
    for i in range(model.num_layers):
        assert torch.equal(getattr(model, f"fixed_noise{i}"), getattr(other, f"fixed_noise{i}"))


# --- sizes --------------------------------------------------------------------------------------


def test_teacher_512_size_and_students_build() -> None:
    teacher = GCFSR(out_size=512, narrow=1.0)
    n = sum(p.numel() for p in teacher.parameters())
    assert n == pytest.approx(62.35e6, rel=0.005)
    prev = n
    for r in RATIOS:
        student = GCFSR(out_size=512, narrow=r)
        m = sum(p.numel() for p in student.parameters())
        assert m < prev
        assert student.feature_taps(4) == teacher.feature_taps(4)
        prev = m
    d = StyleGAN2D(out_size=512, narrow=1.0)
    assert sum(p.numel() for p in d.parameters()) == pytest.approx(28.98e6, rel=0.001)


@pytest.mark.parametrize(("out_size", "narrow"), [(s, n * r) for s, n in SMALL for r in (1.0, *RATIOS)])
def test_forward_backward_small(out_size: int, narrow: float) -> None:
    torch.manual_seed(0)
    g = GCFSR(out_size=out_size, narrow=narrow)
    d = StyleGAN2D(out_size=out_size, narrow=narrow)
    x, cond = g.example_inputs(2, out_size)
    sr = g(x, cond)
    assert sr.shape == (2, 3, out_size, out_size)
    logits = d(sr)
    assert logits.shape == (2, 1)
    (logits.sum() + sr.abs().mean()).backward()
    for name, p in [*g.named_parameters(), *d.named_parameters()]:
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert g.final_linear.weight.grad.abs().sum() > 0


# --- taps ---------------------------------------------------------------------------------------


def _tap_outputs(model: GCFSR, names: list[str]) -> dict[str, torch.Tensor]:
    got: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda _m, _i, out, n=n: got.__setitem__(n, out))
               for n in names]
    x, cond = model.example_inputs(1, model.out_size)
    with torch.no_grad():
        model(x, cond)
    for h in handles:
        h.remove()
    return got


@pytest.mark.parametrize(("out_size", "narrow"), SMALL)
def test_feature_taps_fire_and_match_student(out_size: int, narrow: float) -> None:
    teacher = GCFSR(out_size=out_size, narrow=narrow)
    levels = teacher.decoder_levels()
    assert len(levels) == int(math.log2(out_size)) - 3  # 16, 32, ..., out_size
    for k in range(1, len(levels) + 1):
        assert teacher.feature_taps(k)[-1] == levels[-1]
    names = teacher.feature_taps(len(levels))
    assert names == levels
    t_out = _tap_outputs(teacher, names)
    for r in RATIOS:
        student = GCFSR(out_size=out_size, narrow=narrow * r)
        assert student.feature_taps(len(levels)) == names
        s_out = _tap_outputs(student, names)
        for j, n in enumerate(names):
            t, s = t_out[n], s_out[n]
            assert t.ndim == s.ndim == 4
            assert t.shape[-2:] == s.shape[-2:] == (16 * 2**j, 16 * 2**j)
            assert s.shape[1] < t.shape[1] or s.shape[1] == t.shape[1] == 2
    with pytest.raises(ValueError):
        teacher.feature_taps(len(levels) + 1)
    assert _meta("gcfsr", out_size=512).feature_taps(3) == ["style_convs.1", "style_convs.5", "style_convs.9"]


def test_discriminator_penultimate_is_last_hidden() -> None:
    d = StyleGAN2D(out_size=32, narrow=0.125)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    module = dict(d.named_modules())[d.penultimate]
    module.register_forward_hook(lambda _m, inp, out: seen.append((inp[0], out)))
    (x,) = d.example_inputs(3, 32)
    logits = d(x)
    hidden, out = seen[0]
    assert hidden.shape == (3, 64)  # channels at 4x4, after final_linear.0's activation
    assert torch.equal(out, logits)  # the penultimate module is the last layer


# --- MACs ---------------------------------------------------------------------------------------


def test_fvcore_counts_every_conv() -> None:
    from fvcore.nn import FlopCountAnalysis

    model = GCFSR(out_size=32, narrow=0.125).eval()
    model.set_random_noise(False)
    flops = FlopCountAnalysis(model, model.example_inputs(1, 32))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    by_op = flops.by_operator()
    # every op with multiply-adds is counted; what fvcore skips is elementwise or padding
    skipped = set(flops.unsupported_ops())
    assert skipped <= {"aten::mul", "aten::mul_", "aten::add", "aten::sub", "aten::neg", "aten::div",
                       "aten::leaky_relu", "aten::pad", "aten::flip", "aten::pow", "aten::sum", "aten::rsqrt",
                       "aten::expand"}
    assert by_op["conv"] > 0 and by_op["linear"] > 0
    # the style convs alone: a lower bound from their weight shapes (3x3 over H*W outputs)
    convs = [model.style_conv1.modulated_conv] + [s.modulated_conv for s in model.style_convs]
    lower = sum(m.weight.shape[1] * m.weight.shape[2] * 9 * (16 * 2 ** ((i + 1) // 2)) ** 2
                for i, m in enumerate(convs) if not m.upsample)
    assert flops.total() > lower


def test_unit_range_io_is_the_signed_network_in_disguise() -> None:
    """gankd feeds [0, 1] images; the network underneath sees the original's [-1, 1]."""
    torch.manual_seed(0)
    unit = GCFSR(out_size=32, narrow=0.125).eval()
    signed = GCFSR(out_size=32, narrow=0.125, signed_io=True).eval()
    signed.load_state_dict(unit.state_dict())
    unit.set_random_noise(False)
    signed.set_random_noise(False)
    x, cond = unit.example_inputs(2, 32)
    with torch.no_grad():
        a = unit(x, cond)
        b = signed(x * 2 - 1, cond)
    assert torch.allclose(a, (b + 1) / 2, atol=1e-6)
    d_unit = StyleGAN2D(out_size=32, narrow=0.125)
    d_signed = StyleGAN2D(out_size=32, narrow=0.125, signed_io=True)
    d_signed.load_state_dict(d_unit.state_dict())
    with torch.no_grad():
        assert torch.allclose(d_unit(x), d_signed(x * 2 - 1), atol=1e-6)
