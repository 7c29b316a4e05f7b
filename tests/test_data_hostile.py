"""Damaged real data: each damage is one UserError naming the file (and, where it can, the line).

The real files are copied from the data root into tmp_path at test time (never into the repository),
damaged as an interrupted copy, a careless export or a slip of the hand would, and loaded through the
registry with MI_HARNESS_DATA_ROOT pointing at the damaged copy.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from harness import UserError, registry
from harness.dataroot import ENV_VAR

SHARED = Path(os.environ.get(ENV_VAR) or Path(__file__).resolve().parents[2] / "shared" / "data")
pytestmark = pytest.mark.skipif(not (SHARED / "tu" / "MUTAG").is_dir(), reason="no data root with the real files")


def copy(root: Path, *parts: str) -> Path:
    folder = root.joinpath(*parts)
    shutil.copytree(SHARED.joinpath(*parts), folder)
    for path in [folder, *folder.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the shared copies are read-only
    return folder


def keep_lines(path: Path, count: int) -> None:
    """Cut the file at a line boundary after `count` lines, as an interrupted copy would."""
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:count]))


def set_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def into_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def loaded(monkeypatch, root: Path, dataset: str) -> str:
    """The one UserError loading `dataset` from `root` raises, as text."""
    monkeypatch.setenv(ENV_VAR, str(root))
    with pytest.raises(UserError) as caught:
        registry.get("dataset", dataset).instantiate()
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def mutag(root: Path) -> Path:
    return copy(root, "tu", "MUTAG")


A, INDICATOR, GRAPH_LABELS = "MUTAG_A.txt", "MUTAG_graph_indicator.txt", "MUTAG_graph_labels.txt"
NODE_LABELS, EDGE_LABELS = "MUTAG_node_labels.txt", "MUTAG_edge_labels.txt"


def cut(file: str, lines: int):
    return lambda folder: keep_lines(folder / file, lines)


def put(file: str, line: int, text: str):
    return lambda folder: set_line(folder / file, line, text)


def without(file: str):
    return lambda folder: (folder / file).unlink()


def folder_instead_of(file: str):
    return lambda folder: into_folder(folder / file)


def cut_mid_line(file: str):
    return lambda folder: (folder / file).write_text((folder / file).read_text()[:1000].rsplit(",", 1)[0] + ",")


# (id, damages, what the one message must say)
MUTAG_DAMAGES = [
    ("edges_cut", [cut(A, 5000)],
     r"MUTAG_A.txt: 5000 lines, but MUTAG_edge_labels.txt has 7442 .*MUTAG_A.txt looks truncated after line 5000"),
    ("edges_cut_without_edge_labels", [cut(A, 5000), without(EDGE_LABELS)],
     r"MUTAG_A.txt: the last \d+ of 188 graphs have no edge.*MUTAG_A.txt looks truncated after line 5000"),
    ("edges_cut_mid_line", [cut_mid_line(A)], r"MUTAG_A.txt, line \d+: expected 2 integer\(s\).*cut short"),
    ("edge_labels_cut", [cut(EDGE_LABELS, 3000)],
     r"MUTAG_edge_labels.txt: 3000 lines, but MUTAG_A.txt has 7442 .*looks truncated after line 3000"),
    ("indicator_cut", [cut(INDICATOR, 3000)],
     r"MUTAG_graph_indicator.txt: 3000 lines, but MUTAG_node_labels.txt has 3371 .*"
     r"MUTAG_graph_indicator.txt looks truncated after line 3000"),
    ("indicator_cut_without_node_labels", [cut(INDICATOR, 3000), without(NODE_LABELS)],
     r"MUTAG_A.txt, line \d+: node \d+, but MUTAG_graph_indicator.txt lists 3000 nodes: "
     r"MUTAG_graph_indicator.txt looks truncated after line 3000"),
    ("node_labels_cut", [cut(NODE_LABELS, 3000)],
     r"MUTAG_node_labels.txt: 3000 lines, but MUTAG_graph_indicator.txt has 3371 .*looks truncated after line 3000"),
    ("graph_labels_cut", [cut(GRAPH_LABELS, 150)],
     r"MUTAG_graph_labels.txt: 150 lines, but MUTAG_graph_indicator.txt numbers 188 graphs.*"
     r"looks truncated after line 150"),
    ("node_label_huge", [put(NODE_LABELS, 5, "1000000")],
     r"MUTAG_node_labels.txt, line 5: node label 1000000 is out of range"),
    ("node_label_negative", [put(NODE_LABELS, 5, "-3")], r"MUTAG_node_labels.txt, line 5: node label -3 is out of range"),
    ("edge_label_out_of_range", [put(EDGE_LABELS, 9, "99999")],
     r"MUTAG_edge_labels.txt, line 9: edge label 99999 is out of range"),
    ("graph_label_out_of_range", [put(GRAPH_LABELS, 10, "7")],
     r"MUTAG_graph_labels.txt, line 10: graph label 7 is held by this graph alone"),
    ("node_id_zero", [put(A, 1, "0, 2")], r"MUTAG_A.txt, line 1: node ids start at 1"),
    ("indicator_out_of_order", [put(INDICATOR, 40, "9")],
     r"MUTAG_graph_indicator.txt, line 40: graph ids must run in order"),
    ("edges_a_folder", [folder_instead_of(A)], r"MUTAG_A.txt is a folder"),
    ("node_labels_a_folder", [folder_instead_of(NODE_LABELS)], r"MUTAG_node_labels.txt is a folder"),
]


@pytest.mark.parametrize(("damages", "expected"), [case[1:] for case in MUTAG_DAMAGES],
                         ids=[case[0] for case in MUTAG_DAMAGES])
def test_damaged_tu_files_are_named_with_the_file_and_the_line(monkeypatch, tmp_path, damages, expected):
    folder = mutag(tmp_path)
    for damage in damages:
        damage(folder)
    assert re.search(expected, loaded(monkeypatch, tmp_path, "mutag"))


def test_the_undamaged_copy_passes_every_check_and_loads_as_the_original(monkeypatch, tmp_path):
    mutag(tmp_path)
    build = registry.get("dataset", "mutag").instantiate
    monkeypatch.setenv(ENV_VAR, str(SHARED))
    original = build()
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    copied = build()
    assert len(copied.graphs) == 188 and (copied.labels == original.labels).all()
    assert [g.edge_index.tolist() for g in copied.graphs] == [g.edge_index.tolist() for g in original.graphs]


def trace(root: Path) -> Path:
    return copy(root, "ucr", "Trace")


@pytest.mark.parametrize(("delimiter", "called"), [(",", "commas"), (";", "semicolons")])
def test_a_ucr_file_with_the_wrong_delimiter_is_named_in_one_sentence_without_its_line(
        monkeypatch, tmp_path, delimiter, called):
    train = trace(tmp_path) / "Trace_TRAIN.tsv"
    train.write_text(train.read_text().replace("\t", delimiter))
    first_value = train.read_text().split(delimiter)[1]
    message = loaded(monkeypatch, tmp_path, "ucr_trace")
    assert re.search(rf"Trace_TRAIN.tsv, line 1: .*separated by tabs.*separates them with {called}\.$", message)
    assert first_value not in message and len(message) < 300


@pytest.mark.parametrize("file", ["Trace_TRAIN.tsv", "Trace_TEST.tsv"])
def test_a_folder_where_a_ucr_file_belongs_is_named_as_such(monkeypatch, tmp_path, file):
    into_folder(trace(tmp_path) / file)
    assert re.search(rf"{file} is a folder", loaded(monkeypatch, tmp_path, "ucr_trace"))


@pytest.mark.parametrize("file", ["ind.cora.x", "ind.cora.graph", "ind.cora.test.index"])
def test_a_folder_where_a_planetoid_file_belongs_is_named_as_such(monkeypatch, tmp_path, file):
    into_folder(copy(tmp_path, "planetoid", "cora", "raw") / file)
    assert re.search(rf"{re.escape(file)} is a folder", loaded(monkeypatch, tmp_path, "cora"))
