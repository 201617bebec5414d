"""Near-duplicate photos across splits: the same photo re-saved, re-encoded, resized or slightly
cropped is one photo, and a held-out one must not reach training through its copy.

Byte-identical copies are found by their sha256 (``folder_dataset``); a copy re-encoded as JPEG,
resized or trimmed has other bytes and other pixels, so it is found by what it shows. Two images
are one photo when both parts of their fingerprints agree:

- *structure*: the image's luma squashed to 32 x 32 pixels (Lanczos), the 63 lowest
  non-constant coefficients of its 2-D DCT as a unit vector (the coefficients a perceptual hash
  thresholds, kept as numbers: a coefficient near the median flips a hash bit under a 1 % crop,
  a number barely moves); cosine at least ``SIMILAR``;
- *colours*: the mean colours of an 8 x 8 grid; root-mean-square difference at most
  ``SAME_COLOURS`` (of the 0-1 range). Structure alone confuses images with little of it: two
  smooth random gradients can share their few coefficients' direction (cosine 0.995).

Measured (2026-12-06, 150 distinct images: scikit-image's, matplotlib's grace_hopper and 130
photos from Debian packages): no two distinct images reach a cosine of 0.94 (the closest, two
landscapes at sunset, 0.938; the two views of scikit-image's motorcycle stereo pair 0.93), and
the closest by cosine differ in colours by 0.06 or more. Re-encoding (PNG; JPEG or WebP at
quality 30 to 100) and resizing (0.25x to 2x) keep every image at a cosine of 0.997 or more;
crops that remove up to 2 % of each side, combined with those, keep photographs at 0.977 or more
(textures such as scikit-image's brick fall lower: a texture shifted is another texture), with
colours within 0.03. Larger crops, and a change of colours (a greyscale copy), are not caught.
``tests/datasets/test_near_duplicates.py`` checks the thresholds both ways on the builtin photos, the
copies by a property test.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

#: cosine of two structure parts at or above which two images may be one photo (module doc)
SIMILAR = 0.97
#: root-mean-square difference of the colour parts at or below which they are (module doc)
SAME_COLOURS = 0.04
_SIDE, _KEEP, _GRID = 32, 8, 8
_N_DCT = _KEEP * _KEEP - 1
#: which split keeps a photo found in several: the held-out ones first, as for byte-identical copies
PRIORITY = ("test", "val", "train")


def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT = _dct_matrix(_SIDE)


def fingerprint(img: np.ndarray) -> np.ndarray:
    """A (H, W, 3) uint8 RGB image's fingerprint: bytes (uint8), the structure part as float16
    then the colour part as uint8, so that one computed now and one read back from an index
    compare exactly alike (the split must not depend on which)."""
    pil = Image.fromarray(img)
    grey = pil.convert("L").resize((_SIDE, _SIDE), Image.Resampling.LANCZOS)
    coeffs = _DCT @ np.asarray(grey, dtype=np.float64) @ _DCT.T
    v = coeffs[:_KEEP, :_KEEP].reshape(-1)[1:]  # the DC term is brightness, not structure
    norm = np.linalg.norm(v)
    structure = (v / norm if norm > 0 else v).astype("<f2")  # a flat image: zeros, like nothing
    colours = np.asarray(pil.resize((_GRID, _GRID), Image.Resampling.BOX), dtype=np.uint8)
    return np.concatenate([structure.view(np.uint8), colours.reshape(-1)])


def _structure(fps: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(fps[..., :2 * _N_DCT]).view("<f2").astype(np.float32)


def _colours(fps: np.ndarray) -> np.ndarray:
    return fps[..., 2 * _N_DCT:].astype(np.float32) / 255.0


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine of two fingerprints' structure parts."""
    return float(_structure(a) @ _structure(b))


def colour_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((_colours(a) - _colours(b)) ** 2)))


def same_photo(a: np.ndarray, b: np.ndarray) -> bool:
    return similarity(a, b) >= SIMILAR and colour_difference(a, b) <= SAME_COLOURS


def to_text(fp: np.ndarray) -> str:
    """A fingerprint as a string for a JSON index."""
    return base64.b64encode(fp.tobytes()).decode("ascii")


def from_text(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy()


@dataclass(frozen=True)
class Copy:
    """``dropped`` (of split ``split``) shows the photo ``kept`` shows, with this similarity."""

    dropped: str
    split: str
    kept: str
    similarity: float

    def __str__(self) -> str:
        return f"{self.dropped} ~ {self.kept} ({self.similarity:.3f})"


def across_splits(splits: Mapping[str, Sequence[str]], prints: Mapping[str, np.ndarray | None]) -> list[Copy]:
    """Every image of a split that is a near-duplicate of an image of a split before it in
    ``PRIORITY`` (test before val before train): those the caller drops. Images without a
    fingerprint (not decodable: refused later, by name) are compared with nothing."""
    found: list[Copy] = []
    for i, split in enumerate(PRIORITY):
        held = [n for s in PRIORITY[:i] for n in splits.get(s, ()) if prints.get(n) is not None]
        mine = [n for n in splits.get(split, ()) if prints.get(n) is not None]
        if not held or not mine:
            continue
        held_fps = np.stack([prints[n] for n in held])
        sims = _structure(np.stack([prints[n] for n in mine])) @ _structure(held_fps).T
        for row, name in enumerate(mine):
            for col in np.argsort(-sims[row], kind="stable"):
                if sims[row, col] < SIMILAR:
                    break
                if colour_difference(prints[name], held_fps[col]) <= SAME_COLOURS:
                    found.append(Copy(name, split, held[col], float(sims[row, col])))
                    break
    return found
