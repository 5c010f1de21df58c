"""`sparsetrain data fetch`: download a data set, or import it from a local folder or archive,
verify every file's sha256, and place the files in the data folder.

Files are written next to their final place under a temporary name and renamed only once all
of them are verified, so a failure (offline, corrupt copy, full disk) leaves the data folder as
it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Callable

from sparsetrain.data.catalog import DataSet, get_dataset
from sparsetrain.data.locate import data_dir
from sparsetrain.errors import ConfigError

DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20

Opener = Callable[[], IO[bytes]]   # opens one candidate copy of a file for reading


def fetch_dataset(name: str, source: str | Path | None = None, dest: str | Path | None = None,
                  log: Callable[[str], None] = lambda message: None) -> str:
    """Place data set `name` in `dest` (default: its data folder); returns what was done."""
    dataset = get_dataset(name)
    dest = Path(dest) if dest is not None else data_dir(None, dataset.folder)
    if all_present(dataset, dest):
        return f"{dataset.name}: already present and verified in {dest}; nothing to do"
    if source is not None:
        import_files(dataset, Path(source), dest)
        return f"{dataset.name}: imported {len(dataset.files)} files from {source} into {dest}"
    with tempfile.TemporaryDirectory(prefix="sparsetrain-fetch-") as scratch:
        archive = Path(scratch) / Path(dataset.url or "archive").name
        log(f"{dataset.name}: downloading {dataset.url}")
        try:
            download(dataset.url, archive)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise ConfigError(
                f"{dataset.name}: download of {dataset.url} failed ({reason}); offline? get "
                f"{dataset.local_copy} and run `sparsetrain data fetch {dataset.name} "
                f"--from PATH`") from None
        import_files(dataset, archive, dest, label=f"the download from {dataset.url}")
    return f"{dataset.name}: downloaded and verified {len(dataset.files)} files into {dest}"


def download(url: str | None, target: Path) -> None:
    """Save `url` to `target` (tests replace this to act offline)."""
    if url is None:
        raise ValueError("this data set has no public download address")
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
            open(target, "wb") as out:
        shutil.copyfileobj(response, out, _CHUNK)


def sha256_of(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def all_present(dataset: DataSet, dest: Path) -> bool:
    """Every file of `dataset` is in `dest` with the expected bytes."""
    for file_name, expected in dataset.files.items():
        path = dest / file_name
        if not path.is_file():
            return False
        with open(path, "rb") as stream:
            if sha256_of(stream) != expected:
                return False
    return True


def import_files(dataset: DataSet, source: Path, dest: Path, label: str | None = None) -> None:
    """Copy the data set's files out of a folder or archive, verified, into `dest`.

    `label` names the source in messages (default `--from SOURCE`).
    """
    label = label or f"--from {source}"
    with ExitStack() as stack:
        candidates = _candidates(dataset, source, label, stack)
        missing = [name for name in dataset.files if not candidates.get(name)]
        if missing:
            raise ConfigError(f"{label}: no {', '.join(missing)} found inside "
                              f"(needs {', '.join(dataset.files)})")
        # The outermost folder this call creates: removed again (if still empty) on failure.
        created = next((folder for folder in reversed([dest, *dest.parents])
                        if not folder.exists()), None)
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"data folder {dest}: cannot create it ({error.strerror})") from None
        staged: dict[str, Path] = {}
        try:
            try:
                for file_name, expected in dataset.files.items():
                    staged[file_name] = _stage(file_name, expected, candidates[file_name],
                                               label, dest)
                # Each file is verified before it is renamed, so even a rename that fails
                # half-way leaves only correct files in `dest`.
                for file_name, temporary in staged.items():
                    os.replace(temporary, dest / file_name)
            except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as error:
                raise ConfigError(f"{label}: the archive is damaged ({error})") from None
            except OSError as error:
                raise ConfigError(f"data folder {dest}: cannot write the files "
                                  f"({error.strerror or error})") from None
        except BaseException:
            for temporary in staged.values():
                temporary.unlink(missing_ok=True)
            if created is not None:
                _remove_empty(dest, created)
            raise


def _remove_empty(folder: Path, top: Path) -> None:
    """Remove `folder` and its parents up to `top` while they are empty."""
    while True:
        if any(folder.iterdir()):
            return
        folder.rmdir()
        if folder == top:
            return
        folder = folder.parent


def _stage(file_name: str, expected: str, openers: list[Opener], label: str,
           dest: Path) -> Path:
    """Copy the first candidate whose sha256 is `expected` to a temporary file in `dest`."""
    seen = []
    for opener in openers:
        handle, temporary_name = tempfile.mkstemp(prefix=f".{file_name}.", suffix=".part",
                                                  dir=dest)
        temporary = Path(temporary_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(handle, "wb") as out, opener() as stream:
                for chunk in iter(lambda: stream.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        if digest.hexdigest() == expected:
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; data is shared
            return temporary
        temporary.unlink()
        seen.append(digest.hexdigest())
    raise ConfigError(f"{file_name} in {label}: sha256 {seen[0]}, expected {expected}; the "
                      "copy is corrupt or a different version")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _candidates(dataset: DataSet, source: Path, label: str, stack: ExitStack
                ) -> dict[str, list[Opener]]:
    """Every copy of each wanted file inside `source`, matched by file name."""
    if not source.exists():
        raise ConfigError(f"{label}: no such file or folder")
    if source.is_dir():
        return {name: [_file_opener(path) for path in sorted(source.rglob(name))
                       if path.is_file()]
                for name in dataset.files}
    if tarfile.is_tarfile(source):
        return _tar_candidates(dataset, source, label, stack)
    if zipfile.is_zipfile(source):
        archive = stack.enter_context(zipfile.ZipFile(source))
        found: dict[str, list[Opener]] = {name: [] for name in dataset.files}
        for info in archive.infolist():
            base = info.filename.rsplit("/", 1)[-1]
            if base in found and not info.is_dir():
                found[base].append(lambda info=info: archive.open(info))
        return found
    raise ConfigError(f"{label}: not a folder, .tar.gz/.tgz or .zip archive")


def _tar_candidates(dataset: DataSet, source: Path, label: str, stack: ExitStack
                    ) -> dict[str, list[Opener]]:
    try:
        archive = stack.enter_context(tarfile.open(source, "r:*"))
        members = archive.getmembers()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ConfigError(f"{label}: cannot read the archive ({error})") from None
    found: dict[str, list[Opener]] = {name: [] for name in dataset.files}
    for member in members:
        base = member.name.rsplit("/", 1)[-1]
        if base in found and member.isfile():
            found[base].append(lambda member=member: _tar_stream(archive, member))
    return found


def _tar_stream(archive: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    stream = archive.extractfile(member)
    assert stream is not None  # isfile() members always have a stream
    return stream


def _file_opener(path: Path) -> Opener:
    return lambda: open(path, "rb")


