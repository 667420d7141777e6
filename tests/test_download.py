"""MovieLens download, offline: a zip built from the real files is "downloaded" from a file:// URL."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from llmrec.data.download import (
    ARCHIVES,
    MIRROR_ENV,
    ChecksumError,
    DownloadError,
    download_movielens,
    sha256_of,
)
from llmrec.data.registry import load_dataset
from llmrec.errors import DatasetNotFoundError

pytestmark = pytest.mark.realdata


def build_zip(source: Path, dest: Path, folder: str, tamper: str | None = None) -> Path:
    """Zip ``source``'s files under ``folder/`` as GroupLens does; ``tamper`` flips one byte of a file."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.iterdir()):
            data = path.read_bytes()
            if path.name == tamper:
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            zf.writestr(f"{folder}/{path.name}", data)
    return dest


@pytest.fixture
def ml100k_zip(tmp_path, require_data) -> Path:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    return build_zip(require_data("ml-100k"), mirror / "ml-100k.zip", "ml-100k")


def test_checksums_are_the_official_files(require_data):
    sums = {}
    for line in require_data("SHA256SUMS").read_text().splitlines():
        digest, path = line.split()
        sums[path.removeprefix("./")] = digest
    for archive in ARCHIVES.values():
        for name, digest in archive.sha256.items():
            assert sums[f"{archive.folder}/{name}"] == digest


def test_download_installs_verified_files(tmp_path, ml100k_zip, require_data):
    data_dir = tmp_path / "data"
    folder = download_movielens("ml-100k", data_dir, url=ml100k_zip.as_uri(), progress=False)
    assert folder == data_dir / "ml-100k"
    assert [p.name for p in data_dir.iterdir()] == ["ml-100k"]  # no temporary leftovers
    for name, digest in ARCHIVES["ml-100k"].sha256.items():
        assert sha256_of(folder / name) == digest
    assert (folder / "README").read_bytes() == require_data("ml-100k", "README").read_bytes()
    assert len(load_dataset("ml-100k", data_dir, download=False).interactions) == 100_000


def test_corrupt_download_fails_and_leaves_nothing(tmp_path, require_data):
    corrupt = build_zip(require_data("ml-100k"), tmp_path / "ml-100k.zip", "ml-100k", tamper="u.item")
    data_dir = tmp_path / "data"
    wanted = r"u\.item from file://.* has sha256 [0-9a-f]{64}, expected 5538"
    with pytest.raises(ChecksumError, match=wanted) as err:
        download_movielens("ml-100k", data_dir, url=corrupt.as_uri(), progress=False)
    assert "nothing was installed" in str(err.value)
    assert list(data_dir.iterdir()) == []


def test_not_a_zip_and_missing_url_fail_cleanly(tmp_path):
    data_dir = tmp_path / "data"
    fake = tmp_path / "ml-100k.zip"
    fake.write_text("<html>503 Service Unavailable</html>")
    with pytest.raises(DownloadError, match="is not a zip archive"):
        download_movielens("ml-100k", data_dir, url=fake.as_uri(), progress=False)
    with pytest.raises(DownloadError, match="could not download"):
        download_movielens("ml-100k", data_dir, url=(tmp_path / "absent.zip").as_uri(), progress=False)
    assert list(data_dir.iterdir()) == []
    with pytest.raises(ValueError, match="can download"):
        download_movielens("amazon-games", data_dir)


def test_archive_without_the_expected_file_is_rejected(tmp_path, require_data):
    source = tmp_path / "partial-source"
    source.mkdir()
    for name in ("u.data", "u.item", "u.genre"):  # no u.user
        (source / name).write_bytes(require_data("ml-100k", name).read_bytes())
    archive = build_zip(source, tmp_path / "ml-100k.zip", "ml-100k")
    with pytest.raises(ChecksumError, match=r"has no u\.user"):
        download_movielens("ml-100k", tmp_path / "data", url=archive.as_uri(), progress=False)
    assert list((tmp_path / "data").iterdir()) == []


def test_existing_files_are_kept_and_missing_ones_added(tmp_path, ml100k_zip, require_data):
    data_dir = tmp_path / "data"
    (data_dir / "ml-100k").mkdir(parents=True)
    mine = data_dir / "ml-100k" / "u.data"
    mine.write_bytes(require_data("ml-100k", "u.data").read_bytes())
    before = mine.stat().st_mtime_ns
    download_movielens("ml-100k", data_dir, url=ml100k_zip.as_uri(), progress=False)
    assert mine.stat().st_mtime_ns == before
    assert all((data_dir / "ml-100k" / n).is_file() for n in ARCHIVES["ml-100k"].sha256)


def test_load_dataset_downloads_through_the_mirror(tmp_path, ml100k_zip, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, ml100k_zip.parent.as_uri())
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError, match=r"put u\.data, u\.item, u\.genre, u\.user in"):
        load_dataset("ml-100k", data_dir, download=False)
    dataset = load_dataset("ml-100k", data_dir, download=True)
    assert dataset.n_users == 943 and Path(dataset.source) == data_dir / "ml-100k"


def test_failed_download_reports_the_manual_route(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, (tmp_path / "no-mirror").as_uri())
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("ml-latest-small", tmp_path / "data", download=True)
    message = str(err.value)
    assert "download failed" in message and "ratings.csv, movies.csv" in message
    assert "files.grouplens.org/datasets/movielens/ml-latest-small.zip" in message


def test_an_incomplete_folder_is_never_completed_by_a_download(tmp_path, ml100k_zip, monkeypatch, require_data):
    monkeypatch.setenv(MIRROR_ENV, ml100k_zip.parent.as_uri())  # a download would succeed
    folder = tmp_path / "data" / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "u.data").write_bytes(require_data("ml-100k", "u.data").read_bytes())
    with pytest.raises(DatasetNotFoundError, match=r"exists but lacks u\.item, u\.genre, u\.user") as err:
        load_dataset("ml-100k", tmp_path / "data", download=True)
    assert "nothing was downloaded" in str(err.value)
    assert [p.name for p in folder.iterdir()] == ["u.data"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["ml-100k"]  # no temporary download folder
