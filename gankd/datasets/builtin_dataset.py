"""``builtin``: the colour photographs that installed wheels carry on disk.

scikit-image ships only part of ``skimage.data`` inside its wheel; the rest (e.g. ``eagle``,
``kidney``, ``lily``, ``skin``) is fetched with pooch on first use, which needs the network. We
read the image files directly from the installed package directories and never call
``skimage.data`` loaders, so nothing can be downloaded. Greyscale images of the wheel (camera,
moon, coins, ...) and drawings (logo, horse, color, phantom) are not used.

Fixed split (by hand, documented; numbers on these photos are not comparable with papers):

- test: astronaut, chelsea, coffee -- the three classic natural photos;
- val: grace_hopper (matplotlib) -- curves only;
- train: hubble_deep_field, immunohistochemistry, motorcycle_left, motorcycle_right, retina,
  rocket. The two motorcycle images are a stereo pair of one scene, so both sit in the same
  split (splitting them would leak test content into training).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from gankd.datasets import DATASETS
from gankd.datasets.config import DataConfig
from gankd.datasets.images import ImageRef, probe_size
from gankd.datasets.source import ImageSource, Splits, content_identity
from gankd.errors import ConfigError

# name -> (package, path inside the package, split)
BUILTIN_IMAGES: dict[str, tuple[str, str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png", "test"),
    "chelsea": ("skimage", "data/chelsea.png", "test"),
    "coffee": ("skimage", "data/coffee.png", "test"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "val"),
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg", "train"),
    "immunohistochemistry": ("skimage", "data/ihc.png", "train"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png", "train"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png", "train"),
    "retina": ("skimage", "data/retina.jpg", "train"),
    "rocket": ("skimage", "data/rocket.jpg", "train"),
}
SPLIT_RULE = "builtin fixed split: test astronaut/chelsea/coffee, val grace_hopper, train the other six"


def _package_dir(package: str) -> Path:
    # find_spec locates the installed package without importing its data loaders
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"DATA=builtin needs the installed package {package!r} (pip install it)")
    return Path(next(iter(spec.submodule_search_locations)))


def builtin_path(name: str) -> Path:
    package, rel, _ = BUILTIN_IMAGES[name]
    path = _package_dir(package) / rel
    if not path.is_file():
        raise ConfigError(f"built-in image {name!r} is missing from the installed {package} "
                          f"package (expected {path}); reinstall {package}")
    return path


@DATASETS.register("builtin")
class BuiltinSource(ImageSource):
    kind = "builtin"

    def __init__(self) -> None:
        self._refs: dict[str, ImageRef] | None = None

    @classmethod
    def from_spec(cls, spec: str) -> BuiltinSource:
        return cls()

    def images(self) -> dict[str, ImageRef]:
        if self._refs is None:
            refs = {}
            for name in BUILTIN_IMAGES:
                path = builtin_path(name)
                refs[name] = ImageRef(name, path, probe_size(path))
            self._refs = refs
        return self._refs

    def splits(self, cfg: DataConfig) -> Splits:
        refs = self.images()

        def split(which: str) -> tuple[ImageRef, ...]:
            return tuple(refs[n] for n in sorted(BUILTIN_IMAGES) if BUILTIN_IMAGES[n][2] == which)

        return Splits(split("train"), split("val"), split("test"), SPLIT_RULE)

    def describe(self) -> dict[str, Any]:
        # content hashes: a package upgrade that changes a photo changes every cache key
        return {"kind": self.kind, "files": content_identity(list(self.images().values()))}
