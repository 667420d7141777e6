"""Fetch MovieLens from GroupLens, verify it, and install it into the data dir atomically.

Only MovieLens is fetched: its licence lets users download it directly and GroupLens serves
stable archives. Everything happens in a temporary folder inside the data dir; the data set's
folder appears (one rename) only after every file we read matched its sha256, so a failed or
corrupt download leaves nothing behind.

The expected checksums are those of the official files (``../shared/data/SHA256SUMS``). Note that
GroupLens regenerates ``ml-latest-small`` from time to time: llmrec expects the 2016 release
(100,004 ratings), while the URL may now serve a newer one (the 2018 release has 100,836); the
checksum error says so, and ``verify=False`` accepts another release knowingly.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from llmrec.data.paths import resolve_data_dir
from llmrec.errors import LLMRecError

log = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"
MIRROR_ENV = "LLMREC_MOVIELENS_URL"
"""Base URL used instead of GroupLens (an institutional mirror, or ``file:///path`` offline)."""
CHUNK = 1 << 20


class DownloadError(LLMRecError, OSError):
    """A download could not be fetched, unpacked or installed."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected sha256."""


@dataclass(frozen=True)
class Archive:
    name: str
    folder: str
    """The folder inside the zip (and under the data dir)."""
    sha256: dict[str, str]
    """Expected sha256 of each file the loader reads."""
    note: str = ""


ARCHIVES: dict[str, Archive] = {
    "ml-100k": Archive("ml-100k", "ml-100k", {
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
        "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    }),
    "ml-latest-small": Archive("ml-latest-small", "ml-latest-small", {
        "ratings.csv": "b4239649fbf90ebf405c56c3ae1d929d9e7c86fc1a3a80cbef1c884df593ef73",
        "movies.csv": "43d1736d3c688eb5b7856473c36d86a1c345676cab256c91720c1f6984d263b5",
        "tags.csv": "ba8789ec2e7894bcb29a1762b2f9fb34bad7f288be6b4d8388e86af2138d430e",
    }, note=" GroupLens regenerates ml-latest-small from time to time; llmrec expects the 2016 release "
            "(100,004 ratings, 671 users). If the server now has a newer release, place the 2016 files "
            "yourself or call download_movielens(..., verify=False) to accept the newer one knowingly."),
}


def archive_url(name: str, base: str | None = None) -> str:
    """``<base>/<name>.zip``; base: argument > ``$LLMREC_MOVIELENS_URL`` > GroupLens."""
    base = base or os.environ.get(MIRROR_ENV) or GROUPLENS_URL
    return f"{base.rstrip('/')}/{name}.zip"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(folder: Path, expected: dict[str, str], origin: str, note: str = "") -> None:
    """Raise ChecksumError naming the first missing or mismatching file."""
    for name, want in expected.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"{origin}: the archive has no {name} (expected in {folder.name}/)")
        got = sha256_of(path)
        if got != want:
            raise ChecksumError(f"{name} from {origin} has sha256 {got}, expected {want}: the download is "
                                f"corrupt or not the release llmrec was built for; nothing was installed."
                                f"{note}")


def download_movielens(
    name: str,
    data_dir: str | Path | None = None,
    *,
    url: str | None = None,
    verify: bool = True,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``name`` (ml-100k or ml-latest-small) into ``<data dir>/<name>/`` and return it.

    ``url`` overrides the archive's address (any urllib URL, ``file://`` included). Files already
    in the target folder are never overwritten; only missing ones are added.
    """
    try:
        archive = ARCHIVES[name]
    except KeyError:
        raise ValueError(f"llmrec can download {', '.join(ARCHIVES)}, not {name!r}") from None
    root = resolve_data_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / archive.folder
    url = url or archive_url(name)
    # The temporary folder sits in the data dir so the final rename stays on one file system.
    with tempfile.TemporaryDirectory(prefix=f".{name}.download.", dir=root) as tmp:
        zip_path = Path(tmp) / f"{name}.zip"
        fetch(url, zip_path, desc=name, progress=progress, timeout=timeout)
        unpacked = Path(tmp) / "unpacked"
        try:
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(unpacked)  # zipfile strips absolute paths and '..' from member names
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{url} is not a zip archive ({err})") from None
        source = unpacked / archive.folder
        if not source.is_dir():
            raise DownloadError(f"{url}: the archive has no {archive.folder}/ folder")
        if verify:
            verify_files(source, archive.sha256, origin=url, note=archive.note)
        else:
            log.warning("installing %s from %s without checking its files' sha256", name, url)
        install(source, target)
    return target


def fetch(url: str, dest: Path, *, desc: str, progress: bool = True, timeout: float = 60.0) -> None:
    """Stream ``url`` to ``dest`` with a progress bar."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {desc}",
                      disable=not progress) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except OSError as err:  # URLError, HTTPError, timeouts and disk errors are all OSErrors
        raise DownloadError(f"could not download {url}: {err}") from err


def install(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` in one rename, or add only the missing files to an existing
    ``target`` (each file one rename), never replacing what is there."""
    if not target.exists():
        with contextlib.suppress(OSError):  # another process may have won the race; merge below
            os.rename(source, target)
            return
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(dest))
