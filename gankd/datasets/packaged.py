"""Data sets made from registry packages, described by committed manifests, built on first use.

A manifest (``gankd/datasets/manifests/<name>.yaml``) lists every image of a set: the package
and the path inside it, the sha256 of that file, its split, group, licence and attribution, how
it is processed, and the sha256 of the image that comes out. The packages are Debian ``.deb``
files (``source: debian``: fetched with ``apt-get download``, no root, and read with
``dpkg-deb --fsys-tarfile``: only the named files are unpacked) or installed wheels
(``source: wheel``: read where the package is installed). Nothing is redistributed: each user
builds the set from their own apt mirror. Layout under ``$GANKD_CACHE/data/``::

    debs/              optional: .deb files put here are used before apt (offline machines,
                       another Debian release: a snapshot.debian.org copy of the recorded version)
    <name>/images/     the produced images (names as in the manifest)
    <name>/licenses/   each package's copyright file, <package>.copyright
    <name>/SOURCES.txt package versions and .deb sha256 sums actually used
    <name>/manifest.yaml  the manifest the set was built from
    <name>/BUILD.json  sha256 of the manifest and of every produced file (the build stamp)

Processing, in this order (PIL and numpy only; no detector, no OpenCV):

1. decode; EXIF orientation applied (as ``gankd.datasets.images.read_image`` does);
2. ``rotate``: degrees clockwise (kphotoalbum's ``angle`` in its ``demo/index.xml``);
3. mode: RGB kept; RGBA/LA only where the alpha is opaque everywhere (checked; then dropped), or
   where the manifest says ``alpha: drop`` (the colour kept as it is, no compositing);
   greyscale replicated to three channels (``L`` is allowed only where the manifest says
   ``mode: L``);
4. ``quad`` (faces): FFHQ-style alignment: the four corners (top-left, bottom-left,
   bottom-right, top-right, in pixels of the rotated image) are mapped onto a ``side`` x
   ``side`` square with ``Image.transform(QUAD, BILINEAR)`` over a reflect-padded copy of the
   photo (where a quad reaches outside it), then resized to the manifest's ``face_size`` with
   Lanczos; ``chip: true`` resizes a ready-aligned face as it is;
5. ``max_side`` (photos): a larger image is resized once (Lanczos) so its long side is
   ``max_side``;
6. an image none of 2-5 changed is copied byte for byte; any other is written as PNG.

``sha256`` in the manifest is the sha256 of the produced *pixels* (``pixel_sha256``: the image
as ``read_image`` decodes it, header ``WxHx3`` then the RGB bytes), not of the PNG file, so that
another zlib writes the same set. ``source_sha256`` is the sha256 of the file in the package: a
different file (another Debian release) stops the build with one line naming it and what to do.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageOps

from gankd import atomic
from gankd.datasets.images import ImageError, decode_image
from gankd.errors import ConfigError
from gankd.locks import file_lock
from gankd.paths import cache_dir

log = logging.getLogger("gankd.datasets")

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"
#: bump when the builder's output for the same manifest changes: sets are rebuilt once
BUILD_FORMAT = 1
_ROTATIONS = {0: None, 90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180,
              270: Image.Transpose.ROTATE_90}  # clockwise degrees -> PIL's counter-clockwise
_FALLBACK = "use DATA=builtin (the photos inside installed wheels) or DATA=<folder of images> instead"


class PackagedDataError(ConfigError):
    """A packaged data set cannot be built here; the message is one line saying what to do."""


# ---- manifests --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    name: str
    path: Path
    doc: dict[str, Any]
    sha256: str  # of the manifest file: the build stamp compares it

    @property
    def packages(self) -> dict[str, dict[str, Any]]:
        return self.doc["packages"]

    @property
    def images(self) -> list[dict[str, Any]]:
        return self.doc["images"]

    @property
    def split_rule(self) -> str:
        return " ".join(str(self.doc.get("split_rule", "manifest splits")).split())


def manifest_names() -> list[str]:
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.yaml"))


def load_manifest(name_or_path: str | Path) -> Manifest:
    path = Path(name_or_path)
    if path.suffix != ".yaml":
        path = MANIFEST_DIR / f"{name_or_path}.yaml"
    try:
        text = path.read_text()
        doc = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read data manifest {path}: {exc}") from None
    where = f"data manifest {path.name}"
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) \
            or not isinstance(doc.get("packages"), dict):
        raise ConfigError(f"{where}: needs 'packages' (a mapping) and 'images' (a list)")
    names = set()
    for i, e in enumerate(doc["images"]):
        for key in ("name", "package", "path", "split", "licence", "attribution"):
            if not e.get(key):
                raise ConfigError(f"{where}: image {i} ({e.get('name', '?')}) has no {key}")
        if e["package"] not in doc["packages"]:
            raise ConfigError(f"{where}: image {e['name']} names package {e['package']!r}, "
                              "which 'packages' does not list")
        if e["split"] not in ("train", "val", "test"):
            raise ConfigError(f"{where}: image {e['name']} has split {e['split']!r} (train, val or test)")
        if e["name"] in names:
            raise ConfigError(f"{where}: image name {e['name']} appears twice")
        if e.get("rotate", 0) not in _ROTATIONS:
            raise ConfigError(f"{where}: image {e['name']}: rotate must be 0, 90, 180 or 270")
        names.add(e["name"])
    for pkg, p in doc["packages"].items():
        if p.get("source") not in ("debian", "wheel"):
            raise ConfigError(f"{where}: package {pkg}: source must be 'debian' or 'wheel'")
        if not p.get("copyright"):
            raise ConfigError(f"{where}: package {pkg} has no copyright file")
    return Manifest(str(doc.get("name", path.stem)), path, doc, hashlib.sha256(text.encode()).hexdigest())


def pixel_sha256(arr: np.ndarray) -> str:
    """sha256 of an (H, W, 3) uint8 image: ``b"WxHx3\\n"`` then the pixels, row-major."""
    h, w = arr.shape[:2]
    return hashlib.sha256(f"{w}x{h}x3\n".encode() + np.ascontiguousarray(arr, np.uint8).tobytes()).hexdigest()


# ---- the built set ----------------------------------------------------------------------------
def data_root(name: str) -> Path:
    return cache_dir() / "data" / name


def debs_dir() -> Path:
    return cache_dir() / "data" / "debs"


def _stamp_ok(root: Path, manifest: Manifest) -> bool:
    try:
        stamp = json.loads((root / "BUILD.json").read_text())
    except (OSError, ValueError):
        return False
    if stamp.get("manifest_sha256") != manifest.sha256 or stamp.get("format") != BUILD_FORMAT:
        return False
    files = stamp.get("files", {})
    for e in manifest.images:  # cheap: presence and byte size; content is hashed by every cache key
        info = files.get(e["name"])
        path = root / "images" / e["name"]
        if info is None or not path.is_file() or path.stat().st_size != info["bytes"]:
            return False
    return True


def ensure_built(manifest: Manifest, progress: bool = True) -> Path:
    """The folder of ``manifest``'s set, built once (under a lock) and later found by its stamp."""
    root = data_root(manifest.name)
    if _stamp_ok(root, manifest):
        return root
    with file_lock(root.parent / f".{manifest.name}.lock"):
        if _stamp_ok(root, manifest):  # another process built it while we waited
            return root
        if root.exists():
            log.info("data set %s in %s is stale or incomplete (manifest changed?); rebuilding",
                     manifest.name, root)
        build(manifest, root, progress=progress)
    return root


def build(manifest: Manifest, root: Path, record: bool = False, progress: bool = True) -> dict[str, Any]:
    """Fetch the packages, produce every image, verify it and publish the set at ``root``.

    ``record``: maintainers only: instead of checking ``source_sha256``/``sha256``/``size`` and
    the packages' versions, fill them in the manifest file from what this machine produced.
    Returns a summary (counts, seconds, bytes)."""
    t0 = time.perf_counter()
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{manifest.name}-", dir=root.parent))
    try:
        summary = _build_into(tmp, manifest, record, progress)
        if record:  # the manifest now holds what was produced: the set is stamped with it
            write_manifest(manifest)
            shutil.copyfile(manifest.path, tmp / "manifest.yaml")
            stamp = json.loads((tmp / "BUILD.json").read_text())
            stamp["manifest_sha256"] = atomic.sha256_file(manifest.path)
            atomic.write_json(tmp / "BUILD.json", stamp)
        old = root.with_name(f".old-{manifest.name}-{os.getpid()}")
        if root.exists():
            os.replace(root, old)
        os.replace(tmp, root)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["bytes"] = sum(p.stat().st_size for p in (root / "images").rglob("*") if p.is_file())
    log.info("data set %s: %d images (train %d, val %d, test %d), %.1f MB, built in %.0f s: %s",
             manifest.name, summary["images"], summary["train"], summary["val"], summary["test"],
             summary["bytes"] / 1e6, summary["seconds"], root)
    return summary


def _build_into(tmp: Path, manifest: Manifest, record: bool, progress: bool) -> dict[str, Any]:
    needed: dict[str, set[str]] = {}
    for e in manifest.images:
        needed.setdefault(e["package"], set()).add(e["path"])
    files: dict[str, dict[str, Any]] = {}
    sources: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="work-", dir=tmp))
    try:
        debs = _fetch_debs(manifest, [p for p in needed if manifest.packages[p]["source"] == "debian"],
                           work, record)
        for pkg, paths in sorted(needed.items()):
            info = manifest.packages[pkg]
            extra = list(info.get("licences", []))
            members = sorted(paths | {info["copyright"], *extra})
            if info["source"] == "debian":
                got, line = _read_deb(manifest, pkg, debs[pkg], members, record)
            else:
                got, line = _read_wheel(manifest, pkg, members, record)
            sources.append(line)
            atomic.write_bytes(tmp / "licenses" / f"{pkg}.copyright", got[info["copyright"]])
            for rel in extra:  # licence files of the images beside the package's copyright
                atomic.write_bytes(tmp / "licenses" / f"{pkg}.{Path(rel).name}", got[rel])
            for e in (e for e in manifest.images if e["package"] == pkg):
                files[e["name"]] = _produce(manifest, e, got[e["path"]], tmp / "images", record)
            if progress:
                log.info("data set %s: %s done (%d images)", manifest.name, pkg,
                         sum(1 for e in manifest.images if e["package"] == pkg))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts = {s: sum(1 for e in manifest.images if e["split"] == s) for s in ("train", "val", "test")}
    sources.append(f"images: {len(files)} (train {counts['train']}, val {counts['val']}, "
                   f"test {counts['test']}); split rule: {manifest.split_rule}")
    atomic.write_text(tmp / "SOURCES.txt", "\n".join(sources) + "\n")
    shutil.copyfile(manifest.path, tmp / "manifest.yaml")
    atomic.write_json(tmp / "BUILD.json", {"format": BUILD_FORMAT, "manifest_sha256": manifest.sha256,
                                           "name": manifest.name, "files": files})
    return {"images": len(files), **counts}


# ---- fetching -----------------------------------------------------------------------------------
def _tool(name: str, manifest: Manifest, packages: list[str]) -> str:
    path = shutil.which(name)
    if path is None:
        raise PackagedDataError(
            f"data set {manifest.name} is built from the Debian packages {', '.join(packages)} and needs "
            f"'{name}' (a Debian/Ubuntu system with apt): {_FALLBACK}, or put the .deb files in {debs_dir()}")
    return path


def _deb_fields(deb: Path) -> tuple[str, str]:
    out = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version"], capture_output=True, text=True)
    fields = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    return fields.get("Package", ""), fields.get("Version", "")


def _fetch_debs(manifest: Manifest, packages: list[str], work: Path, record: bool) -> dict[str, Path]:
    """One .deb per package: from ``debs_dir()`` if there (the recorded version first), else
    ``apt-get download`` of the recorded version, else of apt's candidate (whose files are then
    checked one by one against the manifest)."""
    if not packages:
        return {}
    _tool("dpkg-deb", manifest, packages)
    found: dict[str, Path] = {}
    local = sorted(debs_dir().glob("*.deb")) if debs_dir().is_dir() else []
    for deb in local:
        pkg, version = _deb_fields(deb)
        if pkg in packages and (pkg not in found or version == manifest.packages[pkg].get("version")):
            found[pkg] = deb
    missing = [p for p in packages if p not in found]
    if not missing:
        return found
    apt = _tool("apt-get", manifest, missing)
    sizes = sum(int(manifest.packages[p].get("deb_size", 0)) for p in missing)
    log.info("data set %s: downloading %d Debian package(s) (%.0f MB) with apt-get download: %s",
             manifest.name, len(missing), sizes / 1e6, " ".join(missing))

    def download(specs: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([apt, "download", "-q", *specs], cwd=work, capture_output=True, text=True)

    pinned = [f"{p}={manifest.packages[p]['version']}" if manifest.packages[p].get("version") and not record
              else p for p in missing]
    if download(pinned).returncode != 0:  # one at a time: the recorded version, else apt's candidate
        for p, spec in zip(missing, pinned, strict=True):
            if any(_deb_fields(d)[0] == p for d in work.glob("*.deb")):
                continue
            proc = download([spec])
            if proc.returncode != 0 and spec != p:
                log.warning("data set %s: apt has no %s; trying apt's own version", manifest.name, spec)
                proc = download([p])
            if proc.returncode != 0:
                reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                deb = manifest.packages[p].get("deb", p + "_*.deb")
                raise PackagedDataError(
                    f"data set {manifest.name}: apt-get download {p} failed ({reason}; package lists "
                    f"present? network?): {_FALLBACK}, or put {deb} in {debs_dir()}")
    for deb in sorted(work.glob("*.deb")):
        pkg, _ = _deb_fields(deb)
        if pkg in missing:
            found[pkg] = deb
    lost = [p for p in missing if p not in found]
    if lost:
        raise PackagedDataError(f"data set {manifest.name}: apt-get download gave no .deb for "
                                f"{', '.join(lost)}: {_FALLBACK}")
    return found


def _read_deb(manifest: Manifest, pkg: str, deb: Path, members: list[str],
              record: bool) -> tuple[dict[str, bytes], str]:
    info = manifest.packages[pkg]
    _, version = _deb_fields(deb)
    deb_sha = atomic.sha256_file(deb)
    if record:
        info.update(version=version, deb=deb.name, deb_sha256=deb_sha, deb_size=deb.stat().st_size)
    elif deb_sha != info.get("deb_sha256"):
        log.warning("data set %s: %s is %s %s, not the .deb the manifest was made from (%s %s); checking "
                    "its files one by one", manifest.name, deb.name, pkg, version, info.get("version"),
                    info.get("deb"))
    want = {m.removeprefix("./"): m for m in members}
    got: dict[str, bytes] = {}
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tf:
            for member in tf:
                rel = member.name.removeprefix("./")
                if rel not in want:
                    continue
                if not member.isfile():
                    raise PackagedDataError(f"data set {manifest.name}: {rel} in {pkg} {version} is not a "
                                            "regular file (a link?): the manifest must name the file itself")
                fh = tf.extractfile(member)
                assert fh is not None
                got[want[rel]] = fh.read()
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0 and len(got) < len(want):
            raise PackagedDataError(f"data set {manifest.name}: dpkg-deb could not read {deb} "
                                    f"({err.strip() or 'corrupt .deb?'}); delete it and build again")
    lost = [m for m in members if m not in got]
    if lost:
        raise PackagedDataError(
            f"data set {manifest.name}: {lost[0]} is not in {pkg} {version} ({len(lost)} file(s) missing; "
            f"the manifest was made from {info.get('version')}): {_FALLBACK}, or put {info.get('deb')} "
            f"in {debs_dir()}")
    line = f"{pkg} {version} {deb.name} sha256={deb_sha}"
    if not record and deb_sha != info.get("deb_sha256"):
        line += f" (manifest: {info.get('deb')} {info.get('deb_sha256')})"
    return got, line


def _read_wheel(manifest: Manifest, pkg: str, members: list[str],
                record: bool) -> tuple[dict[str, bytes], str]:
    import importlib.metadata
    import importlib.util

    info = manifest.packages[pkg]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise PackagedDataError(f"data set {manifest.name} needs the installed Python package {pkg} "
                                f"({info.get('distribution', pkg)}): pip install it, or {_FALLBACK}")
    base = Path(next(iter(spec.submodule_search_locations)))
    version = importlib.metadata.version(info.get("distribution", pkg))
    if record:
        info["version"] = version
    dist = importlib.metadata.distribution(info.get("distribution", pkg))
    got = {}
    for m in members:  # paths inside the package, or dist-info:<file> for the wheel's licence
        try:
            if m.startswith("dist-info:"):
                text = dist.read_text(m.split(":", 1)[1])
                if text is None:
                    raise OSError(m)
                got[m] = text.encode()
            else:
                got[m] = (base / m).read_bytes()
        except OSError:
            raise PackagedDataError(f"data set {manifest.name}: {base / m} is missing from {pkg} "
                                    f"{version}: reinstall it, or {_FALLBACK}") from None
    return got, f"{info.get('distribution', pkg)} {version} (installed wheel, {base})"


# ---- producing one image ------------------------------------------------------------------------
def _mismatch(manifest: Manifest, e: dict[str, Any], what: str, got: str, want: str,
              todo: str) -> PackagedDataError:
    return PackagedDataError(f"data set {manifest.name}: {what} of {e['name']} is {got[:12]}..., the "
                             f"manifest ({manifest.path.name}) says {want[:12]}...: {todo}")


def _produce(manifest: Manifest, e: dict[str, Any], data: bytes, out_dir: Path,
             record: bool) -> dict[str, Any]:
    pkg = manifest.packages[e["package"]]
    src_sha = hashlib.sha256(data).hexdigest()
    if record:
        e["source_sha256"] = src_sha
    elif src_sha != e.get("source_sha256"):
        raise _mismatch(manifest, e, f"the source file {e['path']} in {e['package']}", src_sha,
                        str(e.get("source_sha256")),
                        f"this is not the file of {e['package']} {pkg.get('version')} (another Debian "
                        f"release?); put {pkg.get('deb', e['package'])} (snapshot.debian.org) in "
                        f"{debs_dir()}, or {_FALLBACK}")
    arr, unchanged = _process(manifest, e, data)
    dest = out_dir / e["name"]
    if unchanged:
        if Path(e["name"]).suffix.lower() != Path(e["path"]).suffix.lower():
            raise ConfigError(f"data manifest {manifest.path.name}: {e['name']} is copied unchanged from "
                              f"{e['path']}: give it the same extension")
        encoded = data
    else:
        if Path(e["name"]).suffix.lower() != ".png":
            raise ConfigError(f"data manifest {manifest.path.name}: {e['name']} is processed, so it is "
                              "written as PNG: name it .png")
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
        encoded = buf.getvalue()
    decoded = decode_image(encoded, str(dest))  # what every reader of the set will see
    sha = pixel_sha256(decoded)
    size = [int(decoded.shape[1]), int(decoded.shape[0])]
    if record:
        e["size"], e["sha256"] = size, sha
    elif sha != e.get("sha256") or size != list(e.get("size", [])):
        import PIL

        raise _mismatch(manifest, e, f"the produced image ({size[0]}x{size[1]})", sha, str(e.get("sha256")),
                        f"its source file matches, so this Pillow ({PIL.__version__}) decodes or resamples "
                        f"differently from the one that wrote the manifest "
                        f"({manifest.doc.get('pillow', '?')}); install that Pillow, or {_FALLBACK}")
    atomic.write_bytes(dest, encoded)
    return {"bytes": len(encoded), "sha256": hashlib.sha256(encoded).hexdigest()}


def _process(manifest: Manifest, e: dict[str, Any], data: bytes) -> tuple[np.ndarray, bool]:
    """The produced RGB pixels and whether they are the source file's own (copied unchanged)."""
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as exc:
        raise ImageError(f"data set {manifest.name}: {e['path']} in {e['package']} does not decode: "
                         f"{exc}") from None
    fmt, changed = im.format, False
    if fmt in ("JPEG", "WEBP") and im.getexif().get(0x0112, 1) != 1:  # EXIF orientation, as read_image
        im, changed = ImageOps.exif_transpose(im), True
    if fmt not in ("JPEG", "PNG"):
        changed = True
    rot = _ROTATIONS[int(e.get("rotate", 0))]
    if rot is not None:
        im, changed = im.transpose(rot), True
    mode = im.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        alpha = np.asarray(im.convert("RGBA"))[:, :, 3]
        if alpha.min() < 255 and e.get("alpha") != "drop":
            raise ConfigError(f"data set {manifest.name}: {e['name']} has transparent pixels; leave it out, "
                              "or mark it 'alpha: drop' in the manifest (colour kept, no compositing)")
        changed = True
    elif mode == "L":
        if e.get("mode") != "L":
            raise ConfigError(f"data set {manifest.name}: {e['name']} is greyscale; mark it 'mode: L' in the "
                              "manifest if that is meant")
        changed = True
    elif mode != "RGB":
        changed = True
    im = im.convert("RGB")
    if "quad" in e or e.get("chip"):
        face = int(manifest.doc["face_size"])
        if "quad" in e:
            im = _align(im, e)
        if im.size != (face, face):
            im = im.resize((face, face), Image.Resampling.LANCZOS)
        changed = True
    max_side = manifest.doc.get("max_side")
    if max_side and max(im.size) > int(max_side):
        w, h = im.size
        s = int(max_side) / max(w, h)
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
        changed = True
    return np.asarray(im), not changed


def _align(im: Image.Image, e: dict[str, Any]) -> Image.Image:
    """The FFHQ-style square of ``e['quad']`` at its native ``side`` (reflect padding outside)."""
    quad = np.asarray(e["quad"], dtype=np.float64)
    side = int(e["side"])
    w, h = im.size
    over = max(0.0, -quad.min(), quad[:, 0].max() - w, quad[:, 1].max() - h)
    pad = int(np.ceil(over)) + 2 if over > 0 else 0
    if pad:
        a = np.asarray(im)
        im = Image.fromarray(np.pad(a, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"))
        quad = quad + pad
    return im.transform((side, side), Image.Transform.QUAD, tuple(quad.flatten().tolist()),
                        Image.Resampling.BILINEAR)


# ---- maintainers: writing a manifest back -------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    """Mappings as blocks, lists of numbers (quads, sizes) on one line."""


def _list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = bool(data) and all(isinstance(x, (int, float, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _list)

_HEADER = ("# A data set built from registry packages: gankd/datasets/packaged.py says how; licences in\n"
           "# DATA_LICENSES.md. Versions, sizes and sha256 sums are written by `gankd data {name} --record`\n"
           "# (maintainers): edit the rest by hand, then record again on the distribution named below.\n")


def dump_manifest(doc: dict[str, Any]) -> str:
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110,
                     allow_unicode=True)
    return _HEADER.format(name=doc.get("name", "NAME")) + body


def write_manifest(manifest: Manifest) -> None:
    """Write ``manifest.doc`` (as filled by a ``record`` build) back to its file."""
    import PIL

    manifest.doc["pillow"] = PIL.__version__
    atomic.write_text(manifest.path, dump_manifest(manifest.doc))
