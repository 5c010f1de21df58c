"""`sparsetrain data fetch`: import or download a data set, verify sha256, place it atomically;
and where tasks look for their data."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from sparsetrain import ConfigError
from sparsetrain.cli import main
from sparsetrain.data import DATASETS, data_dir, fetch_dataset, require_files
from sparsetrain.data import fetch as fetch_module

PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")


@pytest.fixture
def ptb(ptb_dir: Path) -> Path:
    """The shared PTB copy (conftest finds it, or skips)."""
    return ptb_dir


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(folder: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file: changes when a file is rewritten or replaced."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def invoke(*args: str):
    return CliRunner().invoke(main, ["data", "fetch", *args])


def error_line(result) -> str:
    """The user-error line; also checks exit code 2, one line, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def offline(monkeypatch):
    def refuse(url, target):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(fetch_module, "download", refuse)


# ---- the table of known files --------------------------------------------------------------

def test_the_known_ptb_checksums_are_those_of_the_shared_copy(ptb):
    assert dict(DATASETS["ptb"].files) == {name: sha256(ptb / name) for name in PTB_FILES}


# ---- importing -----------------------------------------------------------------------------

def test_import_from_a_folder_places_identical_files(ptb, tmp_path):
    dest = tmp_path / "data" / "ptb"
    result = invoke("ptb", "--from", str(ptb), "--data-dir", str(dest))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in dest.iterdir()) == sorted(PTB_FILES)
    for name in PTB_FILES:
        assert (dest / name).read_bytes() == (ptb / name).read_bytes()


def test_import_from_a_tar_gz_finds_the_files_in_subfolders(ptb, tmp_path):
    archive = tmp_path / "simple-examples.tgz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for name in PTB_FILES:
            tar.add(ptb / name, arcname=f"simple-examples/data/{name}")
    dest = tmp_path / "out"
    fetch_dataset("ptb", source=archive, dest=dest)
    assert {name: sha256(dest / name) for name in PTB_FILES} == dict(DATASETS["ptb"].files)


def test_import_from_a_zip_ignores_macos_resource_forks(ptb, tmp_path):
    archive = tmp_path / "ptb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
        for name in PTB_FILES:
            zipped.writestr(f"__MACOSX/._{name}", b"\x00\x05\x16\x07 resource fork")
            zipped.write(ptb / name, arcname=name)
    dest = tmp_path / "out"
    fetch_dataset("ptb", source=archive, dest=dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(PTB_FILES)
    assert sha256(dest / "ptb.valid.txt") == DATASETS["ptb"].files["ptb.valid.txt"]


def test_of_two_copies_with_the_same_name_the_verified_one_is_taken(ptb, tmp_path):
    archive = tmp_path / "mixed.tgz"
    decoy = tmp_path / "decoy.txt"
    decoy.write_text("not the corpus\n")
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(decoy, arcname="a/ptb.test.txt")  # listed first, wrong bytes
        for name in PTB_FILES:
            tar.add(ptb / name, arcname=f"b/{name}")
    fetch_dataset("ptb", source=archive, dest=tmp_path / "out")
    assert sha256(tmp_path / "out" / "ptb.test.txt") == DATASETS["ptb"].files["ptb.test.txt"]


def test_a_corrupt_file_is_refused_naming_it_and_both_hashes(ptb, tmp_path):
    source = tmp_path / "copy"
    shutil.copytree(ptb, source)
    corrupt = bytearray((source / "ptb.valid.txt").read_bytes())
    corrupt[100] ^= 0x20
    (source / "ptb.valid.txt").write_bytes(bytes(corrupt))
    dest = tmp_path / "out"
    line = error_line(invoke("ptb", "--from", str(source), "--data-dir", str(dest)))
    assert "ptb.valid.txt" in line
    assert hashlib.sha256(bytes(corrupt)).hexdigest() in line
    assert DATASETS["ptb"].files["ptb.valid.txt"] in line


def test_a_failed_import_leaves_nothing_behind(ptb, tmp_path):
    source = tmp_path / "copy"
    shutil.copytree(ptb, source)
    (source / "ptb.test.txt").write_text("truncated")
    dest = tmp_path / "new" / "data" / "ptb"
    with pytest.raises(ConfigError):
        fetch_dataset("ptb", source=source, dest=dest)
    assert not (tmp_path / "new").exists()


def test_a_failed_import_leaves_an_existing_folder_as_it_was(ptb, tmp_path):
    source = tmp_path / "copy"
    shutil.copytree(ptb, source)
    (source / "ptb.test.txt").write_text("truncated")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError):
        fetch_dataset("ptb", source=source, dest=dest)
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]


def test_a_source_missing_a_file_names_the_missing_file(ptb, tmp_path):
    source = tmp_path / "partial"
    source.mkdir()
    shutil.copy(ptb / "ptb.train.txt", source)
    line = error_line(invoke("ptb", "--from", str(source), "--data-dir", str(tmp_path / "o")))
    assert f"--from {source}: no ptb.valid.txt, ptb.test.txt found" in line


def test_a_source_that_does_not_exist_is_one_line(tmp_path):
    line = error_line(invoke("ptb", "--from", str(tmp_path / "nope.tgz"),
                             "--data-dir", str(tmp_path / "o")))
    assert line == f"Error: --from {tmp_path / 'nope.tgz'}: no such file or folder"


def test_a_source_that_is_not_an_archive_is_one_line(tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("hello")
    line = error_line(invoke("ptb", "--from", str(source), "--data-dir", str(tmp_path / "o")))
    assert "not a folder, .tar.gz/.tgz or .zip archive" in line


def test_an_unknown_data_set_suggests_the_known_ones(tmp_path):
    line = error_line(invoke("ptbb", "--data-dir", str(tmp_path)))
    assert line == "Error: unknown data set 'ptbb'; did you mean ptb? known: ptb"


def test_files_already_present_and_verified_are_not_rewritten(ptb, tmp_path, offline):
    dest = tmp_path / "out"
    fetch_dataset("ptb", source=ptb, dest=dest)
    before = fingerprint(dest)
    result = invoke("ptb", "--data-dir", str(dest))  # offline: would fail if it downloaded
    assert result.exit_code == 0, result.output
    assert "already present" in result.output
    assert fingerprint(dest) == before


def test_a_present_but_corrupt_file_is_replaced(ptb, tmp_path):
    dest = tmp_path / "out"
    fetch_dataset("ptb", source=ptb, dest=dest)
    (dest / "ptb.train.txt").write_text("damaged")
    fetch_dataset("ptb", source=ptb, dest=dest)
    assert sha256(dest / "ptb.train.txt") == DATASETS["ptb"].files["ptb.train.txt"]


# ---- downloading ---------------------------------------------------------------------------

def test_offline_without_from_says_how_to_proceed(tmp_path, offline):
    dest = tmp_path / "out"
    line = error_line(invoke("ptb", "--data-dir", str(dest)))
    assert "download of http" in line and "failed (no network here)" in line
    assert "sparsetrain data fetch ptb --from PATH" in line
    assert not dest.exists()


def test_a_download_is_unpacked_and_verified(ptb, tmp_path, monkeypatch):
    # What the canonical archive looks like: simple-examples/data/ptb.*.txt among other files.
    served = tmp_path / "served.tgz"
    with tarfile.open(served, "w:gz", compresslevel=1) as tar:
        for name in PTB_FILES:
            tar.add(ptb / name, arcname=f"./simple-examples/data/{name}")
    requested = []

    def serve(url, target):
        requested.append(url)
        shutil.copy(served, target)

    monkeypatch.setattr(fetch_module, "download", serve)
    dest = tmp_path / "out"
    result = invoke("ptb", "--data-dir", str(dest))
    assert result.exit_code == 0, result.output
    assert requested == [DATASETS["ptb"].url]
    assert {name: sha256(dest / name) for name in PTB_FILES} == dict(DATASETS["ptb"].files)


def test_the_default_destination_is_the_data_folder_of_the_environment(ptb, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("SPARSETRAIN_DATA", str(tmp_path / "root"))
    result = invoke("ptb", "--from", str(ptb))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "root" / "ptb").iterdir()) == sorted(PTB_FILES)


# ---- where tasks look ----------------------------------------------------------------------

def test_data_dir_prefers_the_recipe_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSETRAIN_DATA", str(tmp_path / "env"))
    assert data_dir(str(tmp_path / "mine"), "ptb") == tmp_path / "mine"


def test_data_dir_falls_back_to_the_environment_then_to_dot_data(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSETRAIN_DATA", str(tmp_path / "env"))
    assert data_dir(None, "ptb") == tmp_path / "env" / "ptb"
    monkeypatch.delenv("SPARSETRAIN_DATA")
    assert data_dir(None, "ptb") == Path("data") / "ptb"


def test_require_files_returns_the_paths_when_all_are_there(ptb):
    assert require_files(ptb, PTB_FILES) == [ptb / name for name in PTB_FILES]


def test_require_files_says_where_it_looked_and_how_to_get_the_data(tmp_path):
    folder = tmp_path / "ptb"
    folder.mkdir()
    (folder / "ptb.train.txt").write_text("x")
    with pytest.raises(ConfigError) as caught:
        require_files(folder, PTB_FILES)
    message = str(caught.value)
    assert "\n" not in message
    assert f"data folder {folder}: missing ptb.valid.txt, ptb.test.txt" in message
    assert f"sparsetrain data fetch ptb --data-dir {folder}" in message
    assert "data.dir" in message and "SPARSETRAIN_DATA" in message


def test_require_files_on_a_missing_folder_says_so(tmp_path):
    with pytest.raises(ConfigError, match=r"no such folder; get them with `sparsetrain data "
                                          r"fetch ptb"):
        require_files(tmp_path / "absent", PTB_FILES)


def test_a_download_that_is_not_an_archive_is_blamed_on_the_download(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_module, "download",
                        lambda url, target: target.write_text("<html>moved</html>"))
    line = error_line(invoke("ptb", "--data-dir", str(tmp_path / "out")))
    assert line == (f"Error: the download from {DATASETS['ptb'].url}: not a folder, "
                    ".tar.gz/.tgz or .zip archive")
    assert not (tmp_path / "out").exists()


def test_a_damaged_archive_is_one_line(ptb, tmp_path):
    archive = tmp_path / "ptb.tgz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for name in PTB_FILES:
            tar.add(ptb / name, arcname=name)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])  # cut off mid-stream
    line = error_line(invoke("ptb", "--from", str(archive), "--data-dir", str(tmp_path / "o")))
    assert line.startswith(f"Error: --from {archive}: ")
    assert not (tmp_path / "o").exists()
