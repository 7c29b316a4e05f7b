"""Install pinned files from HTTP into a folder: download to a temporary file, check its SHA-256, rename.

Nothing here knows a dataset: a caller lists `Pinned` files (where each one goes, its checksum, and
the URL of the file or of the zip archive holding it). A file already in place with its checksum is
never downloaded again. Downloads and archive members land in a hidden staging folder inside the
target folder, are verified, and only then renamed into place (`os.replace`, atomic on one
filesystem), so a download that stops, resets, times out or brings other bytes leaves no file that
looks good. `MI_HARNESS_DATA_MIRROR` (or `mirror=`) replaces every URL's scheme and host, keeping its
path, for a local mirror or a test server.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import shutil
import socket
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from harness.errors import UserError

MIRROR_VARIABLE = "MI_HARNESS_DATA_MIRROR"
DEFAULT_TIMEOUT = 60.0  # seconds a server may stay silent (to connect, or between two reads)
CHUNK = 1 << 16
STAGING_PREFIX = ".fetch-"


@dataclass(frozen=True)
class Pinned:
    """One file to install: where it goes, its SHA-256, and where it is published."""

    path: str  # relative to the target folder, with "/" ("tu/MUTAG/MUTAG_A.txt")
    sha256: str
    url: str  # the file itself, or the zip archive that holds it
    member: str = ""  # its name inside that archive; "" when the URL serves the file itself
    password: bytes = b""  # the archive's ZipCrypto password, where its publisher sets one

    def __post_init__(self) -> None:
        parts = PurePosixPath(self.path).parts
        if not parts or PurePosixPath(self.path).is_absolute() or ".." in parts:
            raise ValueError(f"pinned path {self.path!r} must be relative and stay inside its folder")


@dataclass(frozen=True)
class FileState:
    file: Pinned
    state: Literal["ok", "missing", "corrupt"]
    found: str = ""  # the SHA-256 found where the file is corrupt


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}.") from None
    return digest.hexdigest()


def inspect(folder: Path, files: Iterable[Pinned]) -> list[FileState]:
    """Each file as it is under `folder`: ok (its checksum), missing, or corrupt (another checksum)."""
    states = []
    for file in files:
        path = folder / file.path
        if not path.exists():
            states.append(FileState(file, "missing"))
        elif not path.is_file():
            states.append(FileState(file, "corrupt", "(not a file)"))
        else:
            found = sha256_of(path)
            states.append(FileState(file, "ok") if found == file.sha256 else FileState(file, "corrupt", found))
    return states


def mirrored(url: str, mirror: str | None = None) -> str:
    """`url` with its scheme and host replaced by the mirror's (argument, else MI_HARNESS_DATA_MIRROR)."""
    mirror = mirror or os.environ.get(MIRROR_VARIABLE) or ""
    if not mirror:
        return url
    base = urllib.parse.urlsplit(mirror)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise UserError(f"mirror {mirror!r} (--mirror or {MIRROR_VARIABLE}) is not an http:// or https:// address "
                        "such as http://127.0.0.1:8000.")
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def prepare_folder(folder: Path, what: str = "folder") -> Path:
    """`folder`, created if need be, once it is known to be a folder this process can write to."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"the {what} {folder} is a file, not a folder; name a folder (it is created if missing).")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise _write_error(error, folder, what) from None
    return folder


def fetch(folder: Path, files: Iterable[Pinned], *, mirror: str | None = None, timeout: float = DEFAULT_TIMEOUT,
          echo: Callable[[str], None] = lambda line: None, what: str = "folder") -> dict[str, str]:
    """Install every file not already good under `folder`; each file's path -> kept, installed or replaced.

    Each URL is downloaded once, however many files its archive holds; an archive's files are all
    verified before any is moved into place. The first failure raises a UserError naming the URL or
    the file; what was installed before it stays installed, and nothing half-done is left. `what`
    names the folder in errors ("data root").
    """
    states = inspect(folder, files)
    done = {state.file.path: "kept" for state in states if state.state == "ok"}
    needed = [state for state in states if state.state != "ok"]
    if not needed:
        return done
    prepare_folder(folder, what)
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
    except OSError as error:
        raise _write_error(error, folder, what) from None
    try:
        by_url: dict[str, list[FileState]] = {}
        for state in needed:
            by_url.setdefault(state.file.url, []).append(state)
        for url, group in by_url.items():
            source = mirrored(url, mirror)
            echo(f"downloading {source}")
            download, digest = _download(source, staging, timeout, what)
            if not group[0].file.member:
                staged = {group[0].file.path: (download, digest)}
            else:
                staged = _extract(download, [state.file for state in group], staging, source, what)
                download.unlink()  # an archive can be large: free its space before the next download
            for state in group:  # every file verified before any is moved
                found = staged[state.file.path][1]
                if found != state.file.sha256:
                    raise UserError(f"{state.file.path}: the file downloaded from {source} has SHA-256 {found}, "
                                    f"expected {state.file.sha256}; it was not installed (the download is damaged "
                                    "or the publisher changed it).")
            for state in group:
                _move_into_place(staged[state.file.path][0], folder / state.file.path)
                done[state.file.path] = "installed" if state.state == "missing" else "replaced"
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return done


def _download(url: str, staging: Path, timeout: float, what: str) -> tuple[Path, str]:
    """Stream `url` into a new file in `staging`: (the file, its SHA-256), or a UserError naming the URL."""
    request = urllib.request.Request(url, headers={"User-Agent": "mi-harness"})
    digest = hashlib.sha256()
    received = 0
    with _part_file(staging, what) as out:
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except (OSError, http.client.HTTPException) as error:
            raise UserError(_network_failure(url, error, timeout)) from None
        with response:
            length = response.headers.get("Content-Length", "")
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as error:
                    raise UserError(_network_failure(url, error, timeout, received)) from None
                if not chunk:
                    break
                digest.update(chunk)
                received += len(chunk)
                try:
                    out.write(chunk)
                except OSError as error:
                    raise _write_error(error, staging.parent, what) from None
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as error:
            raise _write_error(error, staging.parent, what) from None
    if length.isdigit() and received != int(length):
        raise UserError(f"downloading {url} failed: the connection closed after {received} of {length} bytes; "
                        "nothing was installed from it, so run the command again.")
    return Path(out.name), digest.hexdigest()


def _part_file(staging: Path, what: str) -> BinaryIO:
    """A new file in `staging` for one download or member (a seam the tests use to fill the disk)."""
    try:
        return tempfile.NamedTemporaryFile(dir=staging, prefix="download-", delete=False)  # noqa: SIM115
    except OSError as error:
        raise _write_error(error, staging.parent, what) from None


def _network_failure(url: str, error: BaseException, timeout: float, received: int = 0) -> str:
    if isinstance(error, urllib.error.HTTPError):
        why = f"the server answered HTTP {error.code} ({error.reason})"
    else:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        after = f" after {received} bytes" if received else ""
        if isinstance(reason, TimeoutError):
            why = f"the server sent nothing for {timeout:g} s{after}"
        elif isinstance(reason, http.client.RemoteDisconnected):
            why = "the server closed the connection without answering"
        elif isinstance(reason, ConnectionResetError):
            why = f"the connection was reset{after}"
        elif isinstance(reason, ConnectionRefusedError):
            why = "the connection was refused (no server listens there)"
        elif isinstance(reason, socket.gaierror):
            why = f"the host name could not be resolved ({reason.strerror}; is the network reachable?)"
        elif isinstance(reason, http.client.IncompleteRead):
            why = f"the connection closed{after}, before the end of the file"
        else:
            why = str(getattr(reason, "strerror", None) or reason) or type(reason).__name__
    return f"downloading {url} failed: {why}; nothing was installed from it."


def _write_error(error: OSError, folder: Path, what: str = "folder") -> UserError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"no space left on the disk of the {what} {folder}; free some space or choose another "
                         "folder (nothing half-written was kept).")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(f"the {what} {folder} is not writable ({error.strerror}); choose a folder you can write to.")
    return UserError(f"cannot write in the {what} {folder}: {error.strerror or error}.")


_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_member(info: zipfile.ZipInfo) -> str:
    """Why extracting this archive member could write outside its folder ("" when it cannot)."""
    name = info.filename
    if name.startswith("/") or "\\" in name or _DRIVE.match(name):
        return "an absolute or Windows path"
    if ".." in PurePosixPath(name).parts:
        return "a path that climbs out of the folder"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return ""


def _extract(archive: Path, files: list[Pinned], staging: Path, source: str, what: str
             ) -> dict[str, tuple[Path, str]]:
    """The named members of a zip archive, each copied to its own file in `staging`: path -> (file, SHA-256).

    The whole archive is refused if any member could escape its folder (absolute, `..`, a symlink),
    even one that is not wanted: a publisher's archive never holds such a member.
    """
    staged: dict[str, tuple[Path, str]] = {}
    try:
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                if why := unsafe_member(info):
                    raise UserError(f"the archive {source} holds an unsafe member {info.filename!r} ({why}); "
                                    "nothing was extracted from it.")
            names = set(bundle.namelist())
            for file in files:
                if file.member not in names:
                    raise UserError(f"the archive {source} holds no {file.member!r} (for {file.path}); nothing was "
                                    "installed from it.")
                digest = hashlib.sha256()
                with bundle.open(file.member, pwd=file.password or None) as member, \
                        _part_file(staging, what) as out:
                    while chunk := member.read(CHUNK):
                        digest.update(chunk)
                        try:
                            out.write(chunk)
                        except OSError as error:
                            raise _write_error(error, staging.parent, what) from None
                staged[file.path] = (Path(out.name), digest.hexdigest())
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise UserError(f"the archive {source} cannot be read ({error}); nothing was installed from it.") from None
    except RuntimeError as error:  # zipfile: a member is encrypted and the password is missing or wrong
        raise UserError(f"the archive {source} cannot be opened: {error}; nothing was installed from it.") from None
    return staged


def _move_into_place(staged: Path, final: Path) -> None:
    """Rename a verified file to its final path (atomic); across filesystems, copy beside it first."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staged, 0o644)  # temporary files are private (0600); installed data is readable by all
        try:
            os.replace(staged, final)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            handle, beside = tempfile.mkstemp(prefix=".part-", dir=final.parent)
            os.close(handle)
            try:
                shutil.copyfile(staged, beside)
                os.chmod(beside, 0o644)
                os.replace(beside, final)
            finally:
                Path(beside).unlink(missing_ok=True)
    except OSError as error:
        raise _write_error(error, final.parent) from None
