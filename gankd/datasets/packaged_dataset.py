"""``photos`` and ``faces``: evaluation-grade sets built from Debian packages on first use.

- ``photos`` (the Real-ESRGAN family's default): natural colour photographs from wallpaper,
  avatar and example-image packages; test and validation photos come from other packages than
  the training photos (manifest ``gankd/datasets/manifests/photos.yaml``).
- ``faces`` (the GCFSR family's default): FFHQ-style aligned face crops, identity-disjoint
  splits (``faces.yaml``).

Both are described image by image in their manifest (gankd/datasets/packaged.py says how they are
built and verified); licences: ``DATA_LICENSES.md``. The split is the manifest's: ``test_images``
and ``val_images`` of the suite do not apply.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gankd import atomic
from gankd.datasets import DATASETS
from gankd.datasets.config import DataConfig
from gankd.datasets.images import ImageError, ImageRef
from gankd.datasets.packaged import Manifest, ensure_built, load_manifest
from gankd.datasets.source import ImageSource, Splits


class PackagedSource(ImageSource):
    """The images of one manifest, split as it says."""

    kind = "packaged"
    manifest_name = ""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.kind = manifest.name
        self._root: Path | None = None

    @classmethod
    def from_spec(cls, spec: str) -> PackagedSource:
        return cls(load_manifest(cls.manifest_name or spec))

    def root(self) -> Path:
        if self._root is None:
            self._root = ensure_built(self.manifest)
        return self._root

    def splits(self, cfg: DataConfig) -> Splits:
        images = self.root() / "images"

        entries = sorted(self.manifest.images, key=lambda e: e["name"])

        def split(which: str) -> tuple[ImageRef, ...]:
            return tuple(ImageRef(e["name"], images / e["name"], (int(e["size"][0]), int(e["size"][1])))
                         for e in entries if e["split"] == which)

        rule = f"{self.manifest.name}: {self.manifest.split_rule}"
        return Splits(split("train"), split("val"), split("test"), rule)

    def verified(self, refs: list[ImageRef] | tuple[ImageRef, ...]) -> None:
        """Each file is the one the build decoded and checked (its sha256 in the build stamp): no
        need to decode 130 photos before every run."""
        stamp = json.loads((self.root() / "BUILD.json").read_text())["files"]
        for ref in refs:
            if atomic.sha256_file(ref.path) != stamp[ref.name]["sha256"]:
                raise ImageError(f"{ref.path} changed since the {self.manifest.name} set was built and "
                                 f"checked: run `gankd data {self.manifest.name} --force`")

    def describe(self) -> dict[str, Any]:
        # the manifest's pixel hashes are the set's content (a rebuilt set has the same ones)
        return {"kind": self.kind, "files": {e["name"]: e["sha256"] for e in self.manifest.images}}


@DATASETS.register("photos")
class PhotosSource(PackagedSource):
    manifest_name = "photos"


@DATASETS.register("faces")
class FacesSource(PackagedSource):
    manifest_name = "faces"
