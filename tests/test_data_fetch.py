"""`mi-harness data fetch / check` against a real HTTP server on the loopback interface.

The server stands in for the three publishers and packs the data root's files the way each one does:
the Planetoid files one by one (tkipf/gcn's gcn/data/), one zip per TU dataset with its folder inside,
and the UCR 2018 archive as one ZipCrypto-encrypted zip of UCRArchive_2018/NAME/NAME_*.tsv. Faults
(a short body, a reset, other bytes, an error status, silence) are switched on per path. Nothing
leaves the machine. Full disks and unwritable folders are simulated by monkeypatching (the tests
run as root, who may write anywhere, and mounting a small tmpfs needs privileges CI may lack).
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import io
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import pytest

from harness import cli, download, registry
from harness.errors import UserError

SHARED = Path(os.environ["MI_HARNESS_DATA_ROOT"])
PLANETOID = "/tkipf/gcn/master/gcn/data/"
TU = "/graphkerneldatasets/"
UCR = "/~eamonn/time_series_data_2018/UCRArchive_2018.zip"
UCR_SETS = ("Trace", "GunPoint", "Coffee")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tu_zip(name: str, replace: dict[str, bytes] | None = None, extra: list[zipfile.ZipInfo] | None = None) -> bytes:
    """DATASET.zip as TU Dortmund publishes it: a folder DATASET/ holding its files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(f"{name}/", b"")
        for path in sorted((SHARED / "tu" / name).iterdir()):
            bundle.writestr(f"{name}/{path.name}", (replace or {}).get(path.name, path.read_bytes()))
        for info in extra or []:
            bundle.writestr(info, b"outside")
    return buffer.getvalue()


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC = _crc_table()


def zipcrypto(members: dict[str, bytes], password: bytes) -> bytes:
    """A zip of stored members encrypted with PKWARE's traditional cipher (APPNOTE 6.1), as `zip -P` writes.

    Python's zipfile reads such archives but cannot write them, and the UCR archive is one.
    """
    out, central = io.BytesIO(), io.BytesIO()
    for name, data in members.items():
        keys = [0x12345678, 0x23456789, 0x34567890]

        def update(byte: int, keys=keys) -> None:
            keys[0] = (keys[0] >> 8) ^ CRC[(keys[0] ^ byte) & 0xFF]
            keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
            keys[2] = (keys[2] >> 8) ^ CRC[(keys[2] ^ (keys[1] >> 24)) & 0xFF]

        for byte in password:
            update(byte)
        crc = zlib.crc32(data)
        plain = bytes(11) + bytes([crc >> 24]) + data  # the 12-byte header ends in the CRC's high byte
        cipher = bytearray(len(plain))
        for index, byte in enumerate(plain):
            t = (keys[2] | 2) & 0xFFFF
            cipher[index] = byte ^ (((t * (t ^ 1)) >> 8) & 0xFF)
            update(byte)
        offset, encoded = out.tell(), name.encode()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 1, 0, 0, 0x21, crc, len(cipher), len(data),
                              len(encoded), 0) + encoded + cipher)
        central.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x0314, 20, 1, 0, 0, 0x21, crc, len(cipher),
                                  len(data), len(encoded), 0, 0, 0, 0, 0o100644 << 16, offset) + encoded)
    start = out.tell()
    out.write(central.getvalue())
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central.getvalue()),
                          start, 0))
    return out.getvalue()


def published() -> dict[str, bytes]:
    routes = {}
    for name in ("cora", "citeseer"):
        for path in (SHARED / "planetoid" / name / "raw").iterdir():
            routes[PLANETOID + path.name] = path.read_bytes()
    for name in ("MUTAG", "PTC_MR", "IMDB-BINARY", "IMDB-MULTI"):
        routes[f"{TU}{name}.zip"] = tu_zip(name)
    members = {f"UCRArchive_2018/{name}/README.md": b"# " + name.encode() for name in UCR_SETS}
    for name in UCR_SETS:
        for path in (SHARED / "ucr" / name).iterdir():
            members[f"UCRArchive_2018/{name}/{path.name}"] = path.read_bytes()
    routes[UCR] = zipcrypto(members, b"someone")
    return routes


class Publisher(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a handler told to stay silent must not hold the tests up

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes = published()
        self.faults: dict[str, str | bytes] = {}  # path -> a fault's name, or other bytes to serve
        self.requests: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address) -> None:
        pass  # the faults break connections on purpose


class Handler(http.server.BaseHTTPRequestHandler):
    server: Publisher

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.requests[self.path] += 1
        fault = self.server.faults.get(self.path, "")
        body = fault if isinstance(fault, bytes) else self.server.routes.get(self.path)
        if body is None or fault in ("404", "500"):
            self.send_error(int(fault or 404))
            return
        if fault == "silent":
            time.sleep(3)
            return
        if fault == "alter":
            body = bytes([body[0] ^ 1]) + body[1:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "truncate":  # the server stops writing and closes cleanly, short of Content-Length
            self.wfile.write(body[: len(body) // 2])
        elif fault == "reset":  # the server dies mid-file: the connection is reset
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    publisher = Publisher()
    thread = threading.Thread(target=publisher.serve_forever, daemon=True)
    thread.start()
    yield publisher
    publisher.shutdown()
    publisher.server_close()


@pytest.fixture
def publisher(server, monkeypatch):
    """The loopback publisher, as the mirror of every source, with no faults and a fresh request count."""
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(download.MIRROR_VARIABLE, server.url)
    server.faults.clear()
    server.requests.clear()
    yield server
    server.faults.clear()


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "data"


def mi_harness(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process as a user would: (exit code, stdout, all output on one line)."""
    argv = sys.argv
    sys.argv = ["mi-harness", *args]
    try:
        cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out, " ".join((captured.out + captured.err).split())


def leftovers(root: Path) -> list[str]:
    """Anything a download left behind: staging folders, temporary files."""
    return [str(path) for path in root.rglob("*") if path.name.startswith((".fetch-", "download-", ".part-"))]


def installed(root: Path) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): sha256(path.read_bytes()) for path in root.rglob("*") if path.is_file()}


def test_fetch_one_then_check_says_ok_and_the_loader_reads_it(publisher, root, capsys, monkeypatch):
    code, _, text = mi_harness(capsys, "data", "fetch", "cora", "--data-root", str(root))
    assert code == 0, text
    assert "cora: 8 installed" in text and "Traceback" not in text
    assert installed(root) == {
        f"planetoid/cora/raw/{path.name}": sha256(path.read_bytes())
        for path in (SHARED / "planetoid" / "cora" / "raw").iterdir()}
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o644 for path in root.rglob("ind.*"))
    code, _, text = mi_harness(capsys, "data", "check", "cora", "--data-root", str(root))
    assert code == 0 and "cora: ok (8 files verified)" in text
    monkeypatch.setenv("MI_HARNESS_DATA_ROOT", str(root))
    graph = registry.get("dataset", "cora").instantiate()
    assert graph.features.shape == (2708, 1433) and len(graph.splits["test"]) == 1000


def test_fetch_all_installs_the_published_bytes_downloading_each_url_once(publisher, root, capsys, monkeypatch):
    code, _, text = mi_harness(capsys, "data", "fetch", "all", "--data-root", str(root))
    assert code == 0, text
    shared = {path: digest for path, digest in installed(SHARED).items() if not path.endswith("README.md")}
    assert installed(root) == shared and not leftovers(root)
    assert publisher.requests[UCR] == 1, "the UCR archive serves three datasets and is downloaded once"
    assert set(publisher.requests.values()) == {1} and len(publisher.requests) == 16 + 4 + 1
    code, _, text = mi_harness(capsys, "data", "check", "--data-root", str(root))
    assert code == 0 and "9 of 9 datasets ok" in text
    monkeypatch.setenv("MI_HARNESS_DATA_ROOT", str(root))
    assert len(registry.get("dataset", "mutag").instantiate().graphs) == 188
    assert registry.get("dataset", "ucr_trace").instantiate().inputs.shape == (200, 1, 275)


def test_a_truncated_download_leaves_no_file_and_says_so(publisher, root, capsys):
    publisher.faults[PLANETOID + "ind.cora.x"] = "truncate"
    code, _, text = mi_harness(capsys, "data", "fetch", "cora", "--data-root", str(root))
    size = (SHARED / "planetoid/cora/raw/ind.cora.x").stat().st_size
    assert code == 2 and "Traceback" not in text
    assert f"downloading {publisher.url}{PLANETOID}ind.cora.x failed: the connection closed after " \
           f"{size // 2} of {size} bytes" in text
    assert not (root / "planetoid/cora/raw/ind.cora.x").exists() and not leftovers(root)


def test_a_server_that_dies_mid_file_leaves_no_file(publisher, root, capsys):
    publisher.faults[PLANETOID + "ind.cora.allx"] = "reset"
    code, _, text = mi_harness(capsys, "data", "fetch", "cora", "--data-root", str(root))
    assert code == 2 and "Traceback" not in text
    assert f"downloading {publisher.url}{PLANETOID}ind.cora.allx failed: " in text and "nothing was installed" in text
    assert not (root / "planetoid/cora/raw/ind.cora.allx").exists() and not leftovers(root)


def test_wrong_bytes_are_refused_naming_the_file_and_both_checksums(publisher, root, capsys):
    path = PLANETOID + "ind.cora.tx"
    publisher.faults[path] = "alter"
    good = publisher.routes[path]
    code, _, text = mi_harness(capsys, "data", "fetch", "cora", "--data-root", str(root))
    assert code == 2 and "Traceback" not in text
    assert "planetoid/cora/raw/ind.cora.tx:" in text and sha256(good) in text
    assert sha256(bytes([good[0] ^ 1]) + good[1:]) in text
    assert not (root / "planetoid/cora/raw/ind.cora.tx").exists() and not leftovers(root)


def test_an_archive_member_with_other_bytes_installs_nothing_from_that_archive(publisher, root, capsys):
    altered = b"1, 2\n"
    publisher.faults[f"{TU}MUTAG.zip"] = tu_zip("MUTAG", replace={"MUTAG_A.txt": altered})
    code, _, text = mi_harness(capsys, "data", "fetch", "mutag", "--data-root", str(root))
    assert code == 2 and "tu/MUTAG/MUTAG_A.txt:" in text and sha256(altered) in text
    assert sha256((SHARED / "tu/MUTAG/MUTAG_A.txt").read_bytes()) in text
    assert not (root / "tu").exists() or not any((root / "tu").rglob("*.txt"))
    assert not leftovers(root)


@pytest.mark.parametrize("member", [
    zipfile.ZipInfo("MUTAG/../../escape.txt"),
    zipfile.ZipInfo("/tmp/escape.txt"),
])
def test_an_archive_member_that_climbs_out_is_refused(publisher, root, capsys, member):
    publisher.faults[f"{TU}MUTAG.zip"] = tu_zip("MUTAG", extra=[member])
    code, _, text = mi_harness(capsys, "data", "fetch", "mutag", "--data-root", str(root))
    assert code == 2 and f"holds an unsafe member {member.filename!r}" in text and "nothing was extracted" in text
    assert not (root / "tu").exists() and not list(root.parent.rglob("escape.txt"))


def test_an_archive_holding_a_symlink_is_refused(publisher, root, capsys):
    link = zipfile.ZipInfo("MUTAG/MUTAG_A.txt.link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    publisher.faults[f"{TU}MUTAG.zip"] = tu_zip("MUTAG", extra=[link])
    code, _, text = mi_harness(capsys, "data", "fetch", "mutag", "--data-root", str(root))
    assert code == 2 and "'MUTAG/MUTAG_A.txt.link' (a symbolic link)" in text
    assert not (root / "tu").exists()


@pytest.mark.parametrize("fault, said", [("404", "HTTP 404 (Not Found)"), ("500", "HTTP 500")])
def test_an_error_status_is_one_sentence_naming_the_url(publisher, root, capsys, fault, said):
    publisher.faults[f"{TU}PTC_MR.zip"] = fault
    code, _, text = mi_harness(capsys, "data", "fetch", "ptc_mr", "--data-root", str(root))
    assert code == 2 and "Traceback" not in text
    assert f"error: downloading {publisher.url}{TU}PTC_MR.zip failed: the server answered {said}" in text


def test_a_silent_server_times_out(publisher, root, capsys):
    publisher.faults[PLANETOID + "ind.cora.allx"] = "silent"
    code, _, text = mi_harness(capsys, "data", "fetch", "cora", "--timeout", "0.3", "--data-root", str(root))
    assert code == 2 and f"{publisher.url}{PLANETOID}ind.cora.allx failed: the server sent nothing for 0.3 s" in text
    assert not leftovers(root)


def test_no_server_at_all_is_one_sentence(publisher, root, capsys, monkeypatch):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, text = mi_harness(capsys, "data", "fetch", "cora", "--mirror", f"http://127.0.0.1:{port}",
                               "--data-root", str(root))
    assert code == 2 and f"downloading http://127.0.0.1:{port}{PLANETOID}" in text and "refused" in text


def test_an_installed_good_file_is_left_untouched_and_not_requested(publisher, root, capsys):
    assert mi_harness(capsys, "data", "fetch", "cora", "--data-root", str(root))[0] == 0
    files = sorted((root / "planetoid/cora/raw").iterdir())
    before = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in files}
    publisher.requests.clear()
    code, _, text = mi_harness(capsys, "data", "fetch", "cora", "--data-root", str(root))
    assert code == 0 and "cora: already installed (8 files verified)" in text
    assert not publisher.requests
    (root / "planetoid/cora/raw/ind.cora.y").unlink()
    code, _, text = mi_harness(capsys, "data", "fetch", "cora", "--data-root", str(root))
    assert code == 0 and "cora: 1 installed, 7 kept" in text
    assert publisher.requests == Counter({PLANETOID + "ind.cora.y": 1})
    assert all((path.stat().st_ino, path.stat().st_mtime_ns) == before[path] for path in files
               if path.name != "ind.cora.y")


def test_check_reports_a_corrupt_file_with_both_checksums_and_fetch_repairs_it(publisher, root, capsys):
    assert mi_harness(capsys, "data", "fetch", "mutag", "--data-root", str(root))[0] == 0
    damaged = root / "tu/MUTAG/MUTAG_A.txt"
    damaged.write_bytes(damaged.read_bytes()[:100])
    expected, found = sha256((SHARED / "tu/MUTAG/MUTAG_A.txt").read_bytes()), sha256(damaged.read_bytes())
    code, _, text = mi_harness(capsys, "data", "check", "mutag", "--data-root", str(root))
    assert code == 1
    assert f"mutag: corrupt: tu/MUTAG/MUTAG_A.txt expected SHA-256 {expected}, found {found}" in text
    assert "run: mi-harness data fetch mutag" in text
    code, out, _ = mi_harness(capsys, "data", "check", "mutag", "--data-root", str(root), "--format", "json")
    report = json.loads(out)["datasets"][0]
    assert code == 1 and report["status"] == "corrupt"
    assert {"path": "tu/MUTAG/MUTAG_A.txt", "status": "corrupt", "expected": expected, "found": found} in report["files"]
    code, _, text = mi_harness(capsys, "data", "fetch", "mutag", "--data-root", str(root))
    assert code == 0 and "mutag: 1 replaced, 5 kept" in text
    assert mi_harness(capsys, "data", "check", "mutag", "--data-root", str(root))[0] == 0


def test_check_of_an_empty_root_says_missing_and_how_to_fetch(root, capsys):
    code, _, text = mi_harness(capsys, "data", "check", "--data-root", str(root))
    assert code == 1 and "0 of 9 datasets ok" in text
    assert "ucr_coffee: missing 2 of 2 files (Coffee_TEST.tsv, Coffee_TRAIN.tsv); run: mi-harness data fetch " \
           "ucr_coffee" in text
    assert not root.exists(), "check never creates the data root"


def test_an_unknown_name_lists_the_known_ones(root, capsys):
    code, _, text = mi_harness(capsys, "data", "fetch", "coraa", "--data-root", str(root))
    assert code == 2 and "unknown dataset 'coraa'. Did you mean 'cora'? Valid datasets: all, citeseer, cora," in text
    code, _, text = mi_harness(capsys, "data", "check", "ucr_trace", "Coffee", "IMDB-BINARY", "--data-root", str(root))
    assert code == 1 and all(name in text for name in ("ucr_trace: missing", "ucr_coffee: missing",
                                                         "imdb_binary: missing"))


def test_a_data_root_that_is_a_file_is_one_sentence(tmp_path, capsys):
    file = tmp_path / "data"
    file.write_text("not a folder")
    for command in ("fetch", "check"):
        code, _, text = mi_harness(capsys, "data", command, "cora", "--data-root", str(file))
        assert code == 2 and f"the data root {file} is a file, not a folder" in text and "Traceback" not in text


def test_an_unwritable_data_root_is_one_sentence(publisher, root, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(download.tempfile, "mkstemp", refuse)  # root may write anywhere: simulate the refusal
    code, _, text = mi_harness(capsys, "data", "fetch", "cora", "--data-root", str(root))
    assert code == 2 and f"the data root {root} is not writable (Permission denied)" in text
    assert not publisher.requests


class _FullDisk:
    """A download file whose every write fails as on a full disk."""

    def __init__(self, real):
        self.real, self.name = real, real.name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()

    def write(self, chunk):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
        pass

    def fileno(self):
        return self.real.fileno()


def test_a_full_disk_is_one_sentence_and_leaves_nothing(publisher, root, capsys, monkeypatch):
    real = download._part_file
    monkeypatch.setattr(download, "_part_file", lambda staging, what: _FullDisk(real(staging, what)))
    for name in ("cora", "mutag"):  # a plain file, then an archive's download
        code, _, text = mi_harness(capsys, "data", "fetch", name, "--data-root", str(root))
        assert code == 2 and f"no space left on the disk of the data root {root}" in text and "Traceback" not in text
    assert not [path for path in root.rglob("*") if path.is_file()]


def test_an_interrupted_fetch_leaves_nothing_and_a_rerun_finishes(publisher, root, capsys, monkeypatch):
    real = download._part_file

    class _Interrupted(_FullDisk):
        def write(self, chunk):
            raise KeyboardInterrupt  # Ctrl-C in the middle of a file

    monkeypatch.setattr(download, "_part_file", lambda staging, what: _Interrupted(real(staging, what)))
    code, _, text = mi_harness(capsys, "data", "fetch", "ucr_coffee", "--data-root", str(root))
    assert code == 130 and "Traceback" not in text
    assert root.is_dir() and not list(root.iterdir())
    monkeypatch.setattr(download, "_part_file", real)
    assert mi_harness(capsys, "data", "fetch", "ucr_coffee", "--data-root", str(root))[0] == 0


def test_a_bad_mirror_is_one_sentence(root, capsys, monkeypatch):
    monkeypatch.setenv(download.MIRROR_VARIABLE, "ftp://example.invalid")
    code, _, text = mi_harness(capsys, "data", "fetch", "cora", "--data-root", str(root))
    assert code == 2 and "mirror 'ftp://example.invalid'" in text and "not an http:// or https:// address" in text


@pytest.mark.parametrize("name, folder", [("cora", "planetoid/cora/raw"), ("mutag_semi", "tu/MUTAG"),
                                          ("ucr_trace", "ucr/Trace/Trace_TRAIN.tsv")])
def test_a_missing_dataset_names_the_command_that_fetches_it(tmp_path, monkeypatch, name, folder):
    monkeypatch.setenv("MI_HARNESS_DATA_ROOT", str(tmp_path))
    command = name.removesuffix("_semi")
    with pytest.raises(UserError, match=f"{folder} does not exist under the data root .*; dataset '{command}' is "
                                        f"not installed there, run: mi-harness data fetch {command}\\.$"):
        registry.get("dataset", name).instantiate()


def test_the_installed_command_exits_2_without_a_traceback(publisher, root):
    publisher.faults[PLANETOID + "ind.cora.allx"] = "404"
    result = subprocess.run([sys.executable, "-m", "harness.cli", "data", "fetch", "cora", "--data-root", str(root)],
                            capture_output=True, text=True, timeout=120)
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "Traceback" not in text
    assert f"{publisher.url}{PLANETOID}ind.cora.allx failed: the server answered HTTP 404" in text
