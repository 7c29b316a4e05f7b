"""Bad input as a corpus: every malformed suite in tests/data/bad_suites/ gets a short, clear error.

Each file starts with `# expect: <part of the message>` and `# field: <where it points>`.
The message must name the file, the field and the expectation, and the CLI must print it
as one message with exit code 2, never a traceback. Data-root problems likewise.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import registry
from harness.api import Budget
from harness.cells import Cell, execute
from harness.cli import main
from harness.dataroot import ENV_VAR, data_root, dataset_path
from harness.errors import UserError
from harness.suite import load

CORPUS = sorted((Path(__file__).parent / "data" / "bad_suites").glob("*.toml"))
SHARED = Path(os.environ["MI_HARNESS_DATA_ROOT"])  # the data root; conftest.py defaults it to ../shared/data
# A handful run through a fresh interpreter as a user would; the whole corpus runs through main() in-process.
THROUGH_A_SUBPROCESS = ("toml_syntax_error", "unknown_suite_key")


def expectation(path: Path) -> tuple[str, str]:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# expect: ") and lines[1].startswith("# field: "), f"{path.name}: header missing"
    return lines[0].removeprefix("# expect: "), lines[1].removeprefix("# field: ")


def test_the_corpus_holds_at_least_twenty_malformed_suites():
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_a_malformed_suite_is_refused_naming_file_field_and_what_is_valid(path):
    expected, field = expectation(path)
    with pytest.raises(UserError) as caught:
        load(path)
    message = str(caught.value)
    assert path.name in message and field in message and expected in message, message
    assert len(message) < 1000 and message.count("\n") <= 2, "a short error, not a dump"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_the_cli_prints_one_message_and_exits_2(path, tmp_path, monkeypatch, capsys):
    expected, _ = expectation(path)
    store = tmp_path / "never.sqlite"
    monkeypatch.setattr(sys, "argv", ["mi-harness", "run", str(path), "--store", str(store)])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    assert exited.value.code == 2
    assert "error:" in out.out and path.name in out.out and "Traceback" not in out.out + out.err
    assert not store.exists(), "a refused suite must not create a store"


@pytest.mark.parametrize("name", THROUGH_A_SUBPROCESS)
def test_a_user_running_a_malformed_suite_sees_no_traceback(name, tmp_path):
    path = next(p for p in CORPUS if p.stem == name)
    expected, field = expectation(path)
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "--store", str(tmp_path / "s")],
                            capture_output=True, text=True, timeout=120)
    text = " ".join((result.stdout + result.stderr).split())  # rich wraps long lines
    assert result.returncode == 2
    assert path.name in text and field in text and " ".join(expected.split()) in text
    assert "Traceback" not in text


# Data-root problems: the folder, a missing file, a truncated file, a file in the wrong format.


def test_an_unset_data_root_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(UserError, match=f"no data root: set {ENV_VAR}"):
        data_root()


def test_a_data_root_that_is_not_a_folder_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"nowhere \(from MI_HARNESS_DATA_ROOT\) is not a folder"):
        dataset_path("ucr", "Trace")


def test_an_empty_data_root_names_the_missing_file(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(UserError, match=r"missing data: .*ucr/Trace/Trace_TRAIN.tsv does not exist"):
        registry.get("dataset", "ucr_trace").instantiate()
    with pytest.raises(UserError, match=r"missing data: .*planetoid/cora/raw"):
        registry.get("dataset", "cora").instantiate()


def test_a_cell_over_missing_data_is_recorded_failed_with_the_message(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    cell = Cell("s", "representation", "raw", {"random_init": False}, "ucr_trace", {}, 0, 0, Budget(epochs=1), "cpu",
                "raw", "ucr_trace")
    result = execute(cell)
    assert result.status == "failed" and "Trace_TRAIN.tsv does not exist" in result.error


def copy_ucr_trace(root: Path) -> Path:
    folder = root / "ucr" / "Trace"
    shutil.copytree(SHARED / "ucr" / "Trace", folder)
    return folder / "Trace_TRAIN.tsv"


def test_a_truncated_ucr_file_names_file_and_line(monkeypatch, tmp_path):
    train = copy_ucr_trace(tmp_path)
    text = train.read_text()
    train.write_text(text[: len(text) // 2])  # cut in the middle of a series, as an interrupted copy would
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(UserError, match=r"Trace_TRAIN.tsv, line \d+: series of length \d+, but earlier lines"):
        registry.get("dataset", "ucr_trace").instantiate()


@pytest.mark.parametrize("content, complaint", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a text file"),
    (b"label,v1,v2\n1,0.5,0.25\n", "every field must be a number"),
])
def test_a_ucr_file_in_the_wrong_format_says_what_is_expected(monkeypatch, tmp_path, content, complaint):
    copy_ucr_trace(tmp_path).write_bytes(content)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(UserError, match=complaint) as caught:
        registry.get("dataset", "ucr_trace").instantiate()
    assert "Trace_TRAIN.tsv" in str(caught.value)


def copy_cora(root: Path) -> Path:
    folder = root / "planetoid" / "cora" / "raw"
    shutil.copytree(SHARED / "planetoid" / "cora" / "raw", folder)
    return folder


def test_a_truncated_planetoid_pickle_is_a_clear_error(monkeypatch, tmp_path):
    features = copy_cora(tmp_path) / "ind.cora.allx"
    features.write_bytes(features.read_bytes()[:1000])
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(UserError, match=r"ind.cora.allx: .*Planetoid pickle .*truncated"):
        registry.get("dataset", "cora").instantiate()


def test_a_planetoid_file_in_the_wrong_format_is_a_clear_error(monkeypatch, tmp_path):
    (copy_cora(tmp_path) / "ind.cora.graph").write_text("0 1\n1 2\n")  # an edge list, not the pickled dict
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(UserError, match=r"ind.cora.graph: .*Planetoid pickle"):
        registry.get("dataset", "cora").instantiate()


def test_a_budget_only_batched_estimators_use_does_not_refuse_the_others(tmp_path):
    suite = tmp_path / "small.toml"
    suite.write_text('[suite]\nname = "small"\n[budget]\nsamples = [50]\nbatch_size = 64\n'
                     '[[estimators]]\nname = "ksg"\n[[tasks]]\nname = "gaussian"\n')
    assert len(load(suite).cells) == 1  # KSG ignores the batch: 50 samples serve it
