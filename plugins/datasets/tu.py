"""Graph-classification sets in the TU Dortmund format (Morris et al. 2020).

`DS_A.txt` lists directed edge pairs "i, j" with 1-based node ids, `DS_graph_indicator.txt` the
graph (1-based) of each node, `DS_graph_labels.txt` one label per graph and, where present,
`DS_node_labels.txt` one categorical label per node. Node features are the one-hot node label
where the set has labels, and one-hot node degree otherwise (the GIN / InfoGraph convention for
the social networks). Self-loops are dropped and duplicate edges merged, as PyG's TUDataset does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from harness.api import Graph
from harness.dataroot import dataset_path
from harness.errors import UserError
from plugins.datasets.sources import fetch_hint


@dataclass
class GraphSet:
    """A set of small graphs, each one an item (items "graphs")."""

    name: str
    graphs: list[Graph]
    labels: np.ndarray  # int64 in 0..num_classes-1
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    evaluation: str = "svm_kfold_unscaled"
    items: Literal["graphs"] = "graphs"
    num_classes: int = 0
    feature_source: str = ""


def _integers(path: Path, columns: int) -> np.ndarray:
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a text file of integers ({err}).") from err
    lines = sum(1 for line in text.splitlines() if line.strip())
    try:
        values = np.array(text.replace(",", " ").split(), dtype=np.int64)
    except (ValueError, OverflowError) as err:
        raise UserError(f"{path}: every line must hold {columns} integer(s) ({err}).") from err
    if values.size != columns * lines or not lines:
        raise UserError(f"{path}: expected {columns} integer(s) on each of its {lines} lines.")
    return values.reshape(lines, columns) if columns > 1 else values


def _one_hot(values: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((values.size, width), dtype=np.float32)
    out[np.arange(values.size), values] = 1.0
    return out


def load_tu(name: str, root_parts: tuple[str, ...] = ("tu",)) -> GraphSet:
    hint = fetch_hint(*root_parts, name)
    folder = dataset_path(*root_parts, name, install_hint=hint)
    edges = _integers(dataset_path(*root_parts, name, f"{name}_A.txt", install_hint=hint), 2) - 1
    indicator_path = dataset_path(*root_parts, name, f"{name}_graph_indicator.txt", install_hint=hint)
    graph_of = _integers(indicator_path, 1) - 1
    labels_path = dataset_path(*root_parts, name, f"{name}_graph_labels.txt", install_hint=hint)
    raw_labels = _integers(labels_path, 1)

    nodes, count = graph_of.size, raw_labels.size
    if graph_of.min() != 0 or graph_of.max() != count - 1 or np.any(np.diff(graph_of) < 0):
        raise UserError(
            f"{indicator_path}: graph ids must run in order from 1 to {count} (the number of graph labels)."
        )
    if edges.min() < 0 or edges.max() >= nodes:
        raise UserError(f"{folder}/{name}_A.txt: node ids must lie in 1..{nodes} (the indicator's length).")
    if np.any(graph_of[edges[:, 0]] != graph_of[edges[:, 1]]):
        raise UserError(f"{folder}/{name}_A.txt: an edge joins nodes of two different graphs.")

    edges = edges[edges[:, 0] != edges[:, 1]]
    both = np.concatenate([edges, edges[:, ::-1]])
    keys = np.unique(both[:, 0] * nodes + both[:, 1])  # undirected, merged, sorted by (source, target)
    edges = np.stack([keys // nodes, keys % nodes], axis=1)

    node_labels_path = folder / f"{name}_node_labels.txt"
    if node_labels_path.exists():
        node_labels = _integers(node_labels_path, 1)
        if node_labels.size != nodes:
            raise UserError(f"{node_labels_path}: {node_labels.size} labels for {nodes} nodes.")
        node_labels = node_labels - node_labels.min()
        features = _one_hot(node_labels, int(node_labels.max()) + 1)
        source = "node label one-hot"
    else:
        degree = np.bincount(edges[:, 0], minlength=nodes)
        features = _one_hot(degree, int(degree.max()) + 1)
        source = "degree one-hot"

    classes, labels = np.unique(raw_labels, return_inverse=True)
    starts = np.searchsorted(graph_of, np.arange(count + 1))
    edge_starts = np.searchsorted(graph_of[edges[:, 0]], np.arange(count + 1))
    graphs = []
    for g in range(count):
        lo, hi = starts[g], starts[g + 1]
        if hi == lo:
            raise UserError(f"{indicator_path}: graph {g + 1} has no nodes.")
        edge_index = np.ascontiguousarray((edges[edge_starts[g]:edge_starts[g + 1]] - lo).T)
        graphs.append(Graph(features[lo:hi], edge_index.astype(np.int64)))
    return GraphSet(
        name=name, graphs=graphs, labels=labels.astype(np.int64), num_classes=len(classes), feature_source=source
    )
