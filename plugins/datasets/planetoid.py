"""Planetoid citation graphs (Cora, Citeseer) from the `ind.<name>.*` files of Yang et al. 2016.

Reproduces the standard public split of Kipf & Welling's loader: the first 140 (Cora) / 120
(Citeseer) nodes of `x` train, the next 500 validate, the 1000 nodes of `test.index` test.
Citeseer's test index skips 15 isolated nodes that have no features in `tx`; they are padded
with zero features and carry no label (-1) as in the reference loader. Self-loops listed in the
graph file (124 Citeseer nodes, none in Cora) are kept as a diagonal 1, as the reference loader's
networkx adjacency keeps them, so GCN's A + I gives those nodes weight 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp

from harness.dataroot import dataset_path
from harness.errors import UserError
from plugins.datasets.safe_pickle import safe_load
from plugins.datasets.sources import fetch_hint

PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph")
VALIDATION_SIZE = 500


@dataclass
class NodeGraph:
    """One graph whose nodes are the items (items "graph")."""

    name: str
    features: np.ndarray  # nodes x features, float32
    adjacency: sp.csr_matrix  # symmetric, binary; self-loops only where the graph file lists them
    labels: np.ndarray  # int64, -1 where a node has no label
    splits: dict[str, np.ndarray]
    evaluation: str = "logistic_repeats"
    items: Literal["graph"] = "graph"
    num_classes: int = 0
    meta: dict[str, object] = field(default_factory=dict)


def _matrix(obj: object, path: Path) -> np.ndarray:
    if sp.issparse(obj):
        return np.asarray(obj.toarray())
    if isinstance(obj, np.ndarray) and obj.ndim == 2 and obj.dtype != object:
        return obj
    raise UserError(f"{path}: expected a 2-D numpy array or sparse matrix, found {type(obj).__name__}.")


def _test_index(path: Path) -> np.ndarray:
    try:
        values = [int(line) for line in path.read_text().split()]
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: expected one integer node index per line ({err}).") from err
    if not values:
        raise UserError(f"{path}: the test index is empty.")
    return np.asarray(values, dtype=np.int64)


def load_planetoid(name: str, root_parts: tuple[str, ...] = ("planetoid",)) -> NodeGraph:
    hint = fetch_hint(*root_parts, name)
    folder = dataset_path(*root_parts, name, "raw", install_hint=hint)
    files = {part: dataset_path(*root_parts, name, "raw", f"ind.{name}.{part}", install_hint=hint) for part in PARTS}
    index_path = dataset_path(*root_parts, name, "raw", f"ind.{name}.test.index", install_hint=hint)
    for path in (*files.values(), index_path):
        if path.is_dir():
            raise UserError(f"{path} is a folder, but the Planetoid format has a file there (a pickle, or the "
                            "test index as text).")
    raw = {part: safe_load(path) for part, path in files.items()}
    arrays = {p: _matrix(raw[p], files[p]) for p in PARTS[:-1]}
    x, y, tx, ty, allx, ally = (arrays[p] for p in PARTS[:-1])
    graph = raw["graph"]
    if not isinstance(graph, dict):
        raise UserError(f"{files['graph']}: expected a dict of adjacency lists, found {type(graph).__name__}.")
    test_index = _test_index(index_path)

    for a, b in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        if arrays[a].shape[0] != arrays[b].shape[0]:
            raise UserError(f"{folder}: ind.{name}.{a} and ind.{name}.{b} have different row counts.")
    if not (x.shape[1] == tx.shape[1] == allx.shape[1] and y.shape[1] == ty.shape[1] == ally.shape[1]):
        raise UserError(f"{folder}: the feature or label widths of the ind.{name}.* files disagree.")
    if len(test_index) != tx.shape[0]:
        raise UserError(f"{files['tx']}: {tx.shape[0]} rows but ind.{name}.test.index lists {len(test_index)}.")

    test_sorted = np.sort(test_index)
    first, last = int(test_sorted[0]), int(test_sorted[-1])
    # Citeseer: the test range has holes (isolated nodes absent from tx); pad them with zeros.
    span = last - first + 1
    tx_full = np.zeros((span, tx.shape[1]), dtype=tx.dtype)
    ty_full = np.zeros((span, ty.shape[1]), dtype=ty.dtype)
    tx_full[test_sorted - first] = tx
    ty_full[test_sorted - first] = ty
    if first != allx.shape[0]:
        raise UserError(f"{folder}: test indices start at {first}, expected {allx.shape[0]} (after allx).")

    features = np.vstack([allx, tx_full]).astype(np.float32)
    onehot = np.vstack([ally, ty_full])
    # tx/ty rows are in test.index order; put each row at the node id it belongs to.
    features[test_index] = features[test_sorted]
    onehot[test_index] = onehot[test_sorted]
    labels = np.where(onehot.sum(1) > 0, onehot.argmax(1), -1).astype(np.int64)

    nodes = features.shape[0]
    adjacency = _adjacency(graph, nodes, files["graph"])
    train = np.arange(y.shape[0])
    val = np.arange(y.shape[0], y.shape[0] + VALIDATION_SIZE)
    splits = {"train": train, "val": val, "test": test_sorted}
    for split, index in splits.items():
        if np.any(labels[index] < 0):
            raise UserError(f"{folder}: the {split} split holds nodes without a label.")
    return NodeGraph(
        name=name, features=features, adjacency=adjacency, labels=labels, splits=splits,
        num_classes=int(onehot.shape[1]), meta={"padded_isolated_test_nodes": int(span - len(test_index))},
    )


def _adjacency(graph: dict, nodes: int, path: Path) -> sp.csr_matrix:
    rows, cols = [], []
    for node, neighbours in graph.items():
        if not isinstance(neighbours, list | tuple | set):
            raise UserError(f"{path}: node {node!r} maps to {type(neighbours).__name__}, expected a list.")
        rows.extend([node] * len(neighbours))
        cols.extend(neighbours)
    try:
        rows_a = np.asarray(rows, dtype=np.int64)
        cols_a = np.asarray(cols, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise UserError(f"{path}: adjacency lists must hold integer node ids ({err}).") from err
    if len(graph) > nodes or (rows_a.size and (min(rows_a.min(), cols_a.min()) < 0
                                               or max(rows_a.max(), cols_a.max()) >= nodes)):
        raise UserError(f"{path}: node ids fall outside 0..{nodes - 1} (the feature rows).")
    ones = np.ones(rows_a.size, dtype=np.float32)
    adj = sp.coo_matrix((ones, (rows_a, cols_a)), shape=(nodes, nodes)).tocsr()
    adj = adj + adj.T  # the lists are meant to be undirected; some edges are listed one way only
    adj.data[:] = 1.0  # binary: duplicate listings and self-loops count once
    adj.sum_duplicates()
    adj.eliminate_zeros()
    return adj.astype(np.float32).tocsr()
