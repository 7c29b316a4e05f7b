"""Graph dataset plugins: published shapes and counts, validation errors, and the restricted unpickler."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

os.environ.setdefault("MI_HARNESS_DATA_ROOT", "/work/shared/data")

from harness import registry  # noqa: E402
from harness.errors import UserError  # noqa: E402
from plugins.datasets.graphs import labelled_split  # noqa: E402
from plugins.datasets.planetoid import load_planetoid  # noqa: E402
from plugins.datasets.safe_pickle import safe_load, safe_loads  # noqa: E402
from plugins.datasets.tu import load_tu  # noqa: E402

DATA = Path(os.environ["MI_HARNESS_DATA_ROOT"])


_LOADED: dict[str, object] = {}


def dataset(name: str):
    """Each dataset is parsed once per test session (IMDB takes a few seconds on one core)."""
    if name not in _LOADED:
        _LOADED[name] = registry.get("dataset", name).instantiate()
    return _LOADED[name]


@pytest.fixture(scope="module")
def cora():
    return registry.get("dataset", "cora").instantiate()


@pytest.fixture(scope="module")
def citeseer():
    return registry.get("dataset", "citeseer").instantiate()


def test_cora_has_the_published_size_and_public_split(cora):
    assert cora.items == "graph" and cora.evaluation == "logistic_repeats"
    assert cora.features.shape == (2708, 1433) and cora.features.dtype == np.float32
    assert cora.num_classes == 7 and set(np.unique(cora.labels)) == set(range(7))
    assert {k: len(v) for k, v in cora.splits.items()} == {"train": 140, "val": 500, "test": 1000}
    # 5429 listed edges, 5278 once duplicates are merged (the count PyG and DGL report).
    assert cora.adjacency.nnz // 2 == 5278
    assert (cora.adjacency != cora.adjacency.T).nnz == 0 and cora.adjacency.diagonal().sum() == 0


def test_public_split_is_disjoint_and_balanced_in_training(cora):
    train, val, test = (cora.splits[k] for k in ("train", "val", "test"))
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert np.all(np.bincount(cora.labels[train]) == 20)  # Planetoid: 20 labelled nodes per class


def test_citeseer_pads_isolated_test_nodes_with_zero_features(citeseer):
    assert citeseer.features.shape == (3327, 3703)
    assert citeseer.num_classes == 6
    assert {k: len(v) for k, v in citeseer.splits.items()} == {"train": 120, "val": 500, "test": 1000}
    unlabelled = np.flatnonzero(citeseer.labels < 0)
    assert len(unlabelled) == citeseer.meta["padded_isolated_test_nodes"] == 15
    assert np.all(citeseer.features[unlabelled] == 0)
    assert not set(unlabelled) & set(np.concatenate(list(citeseer.splits.values())))


def test_citeseer_keeps_the_self_loops_its_graph_file_lists(citeseer):
    # The reference loader (networkx adjacency) keeps them as a diagonal 1; GCN's A + I makes it 2.
    adj = citeseer.adjacency
    assert (adj != adj.T).nnz == 0 and set(np.unique(adj.data)) == {1.0}
    assert adj.diagonal().sum() == 124 and (adj.nnz - 124) // 2 == 4552


@pytest.mark.parametrize(
    "name, graphs, classes, width, source",
    [
        ("mutag", 188, 2, 7, "node label one-hot"),
        ("ptc_mr", 344, 2, 18, "node label one-hot"),
        ("imdb_binary", 1000, 2, 136, "degree one-hot"),
        ("imdb_multi", 1500, 3, 89, "degree one-hot"),
    ],
)
def test_tu_sets_have_the_published_counts(name, graphs, classes, width, source):
    data = dataset(name)
    assert data.items == "graphs" and data.splits == {} and len(data.graphs) == graphs
    assert data.num_classes == classes and set(np.unique(data.labels)) == set(range(classes))
    assert data.feature_source == source
    for x, edge_index in data.graphs:
        assert x.dtype == np.float32 and x.shape[1] == width and np.all(x.sum(1) == 1)
        assert edge_index.dtype == np.int64 and edge_index.shape[0] == 2
        assert edge_index.size == 0 or (edge_index.min() >= 0 and edge_index.max() < x.shape[0])


def test_mutag_edges_are_undirected_without_self_loops():
    data = load_tu("MUTAG")
    assert sum(g[1].shape[1] for g in data.graphs) == 7442  # every bond listed both ways
    for _, edge_index in data.graphs:
        pairs = set(map(tuple, edge_index.T))
        assert pairs == {(j, i) for i, j in pairs}
        assert all(i != j for i, j in pairs)


def test_degree_one_hot_matches_the_edge_lists():
    data = dataset("imdb_binary")
    x, edge_index = data.graphs[0]
    assert np.array_equal(x.argmax(1), np.bincount(edge_index[0], minlength=x.shape[0]))


def test_semi_supervised_split_is_stratified_and_disjoint():
    data = registry.get("dataset", "mutag_semi").instantiate({"labelled_fraction": 0.1, "split_seed": 3})
    train, test = data.splits["train"], data.splits["test"]
    assert len(train) == round(0.1 * 63) + round(0.1 * 125) and len(train) + len(test) == 188
    assert not set(train) & set(test)
    assert set(np.unique(data.labels[train])) == {0, 1}
    with pytest.raises(UserError, match="labelled_fraction"):
        labelled_split(data.labels, 1.5, 0)


class _RunsShell:
    """What an attacker would pickle: unpickling it would call os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"x": _RunsShell(marker)}, protocol=2)
    pickle.loads(pickle.dumps([1]))  # a plain pickle still works in this process
    with pytest.raises(pickle.UnpicklingError, match="system"):
        safe_loads(payload)
    assert not marker.exists()
    bad_file = tmp_path / "ind.cora.x"
    bad_file.write_bytes(payload)
    with pytest.raises(UserError, match="ind.cora.x"):
        safe_load(bad_file)
    assert not marker.exists()


def test_restricted_unpickler_reads_arrays_sparse_and_dicts():
    obj = {"a": np.arange(5.0), "s": sp.csr_matrix(np.eye(3)), "l": [1, 2]}
    back = safe_loads(pickle.dumps(obj, protocol=2))
    assert np.array_equal(back["a"], obj["a"]) and (back["s"] != obj["s"]).nnz == 0 and back["l"] == [1, 2]


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A writable copy of the data root (symlinks for the big untouched folders)."""
    root = tmp_path / "data"
    shutil.copytree(DATA / "planetoid" / "cora", root / "planetoid" / "cora")
    shutil.copytree(DATA / "tu" / "MUTAG", root / "tu" / "MUTAG")
    monkeypatch.setenv("MI_HARNESS_DATA_ROOT", str(root))
    return root


def test_truncated_pickle_is_a_user_error_naming_the_file(data_copy):
    path = data_copy / "planetoid" / "cora" / "raw" / "ind.cora.tx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match="ind.cora.tx"):
        load_planetoid("cora")


def test_missing_file_is_a_user_error_naming_it(data_copy):
    (data_copy / "planetoid" / "cora" / "raw" / "ind.cora.graph").unlink()
    with pytest.raises(UserError, match="ind.cora.graph"):
        load_planetoid("cora")


def test_missing_data_root_is_a_user_error(monkeypatch):
    monkeypatch.delenv("MI_HARNESS_DATA_ROOT")
    with pytest.raises(UserError, match="MI_HARNESS_DATA_ROOT"):
        load_tu("MUTAG")


def test_malformed_tu_file_is_a_user_error_naming_it(data_copy):
    path = data_copy / "tu" / "MUTAG" / "MUTAG_A.txt"
    path.write_text(path.read_text().replace("2, 1", "2, x", 1))
    with pytest.raises(UserError, match="MUTAG_A.txt"):
        load_tu("MUTAG")


def test_edge_between_graphs_is_rejected(data_copy):
    path = data_copy / "tu" / "MUTAG" / "MUTAG_A.txt"
    path.write_text("1, 3371\n" + path.read_text())
    with pytest.raises(UserError, match="two different graphs"):
        load_tu("MUTAG")


def test_truncated_graph_labels_are_rejected(data_copy):
    path = data_copy / "tu" / "MUTAG" / "MUTAG_graph_labels.txt"
    path.write_text("\n".join(path.read_text().split()[:100]))
    with pytest.raises(UserError, match="graph_indicator"):
        load_tu("MUTAG")
