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
    """The file's integers, `columns` per line; a problem is named with the file and its line."""
    if path.is_dir():
        raise UserError(f"{path} is a folder, but the TU format has a text file of integers there.")
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a text file of integers ({err}).") from err
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise UserError(f"{path}: the file is empty; expected {columns} integer(s) per line.")
    try:
        values = np.array(text.replace(",", " ").split(), dtype=np.int64)
    except (ValueError, OverflowError):
        values = None
    if values is None or values.size != columns * len(lines):
        for number, line in lines:
            try:
                fine = np.array(line.replace(",", " ").split(), dtype=np.int64).size == columns
            except (ValueError, OverflowError):
                fine = False
            if not fine:
                cut = " (the last line: the file looks cut short)" if number == lines[-1][0] else ""
                raise UserError(f"{path}, line {number}: expected {columns} integer(s) separated by a comma{cut}.")
    return values.reshape(len(lines), columns) if columns > 1 else values


def _line_counts_agree(one: tuple[Path, int], other: tuple[Path, int], unit: str) -> None:
    """Two files with one line per `unit` must have as many lines; the shorter one is named as truncated."""
    (short_path, short_count), (long_path, long_count) = sorted([one, other], key=lambda pair: pair[1])
    if short_count != long_count:
        raise UserError(f"{short_path}: {short_count} lines, but {long_path.name} has {long_count} (one line per "
                        f"{unit} in each): {short_path.name} looks truncated after line {short_count}.")


def _categories_in_range(path: Path, labels: np.ndarray, what: str, count: int) -> None:
    """Categorical labels numbered from 0, fewer than the items they label (so their one-hot fits)."""
    bad = np.flatnonzero((labels < 0) | (labels >= count))
    if bad.size:
        raise UserError(f"{path}, line {bad[0] + 1}: {what} label {labels[bad[0]]} is out of range; {what} labels "
                        f"are categories numbered from 0, below the number of {what}s ({count}).")


def _check_files(folder: Path, name: str, edges: np.ndarray, graph_of: np.ndarray, raw_labels: np.ndarray,
                 node_labels: np.ndarray | None, edge_labels: np.ndarray | None) -> None:
    """Cross-check the files (ids 0-based here): counts that must agree, ids in range, graphs in order."""
    a_path, indicator_path = folder / f"{name}_A.txt", folder / f"{name}_graph_indicator.txt"
    labels_path = folder / f"{name}_graph_labels.txt"
    nodes, count = graph_of.size, raw_labels.size
    if node_labels is not None:
        _line_counts_agree((indicator_path, nodes), (folder / f"{name}_node_labels.txt", node_labels.size), "node")
        _categories_in_range(folder / f"{name}_node_labels.txt", node_labels, "node", nodes)
    if edges.min() < 0:
        raise UserError(f"{a_path}, line {np.flatnonzero(edges.min(axis=1) < 0)[0] + 1}: node ids start at 1.")
    if edges.max() >= nodes:
        line = np.flatnonzero(edges.max(axis=1) >= nodes)[0]
        raise UserError(f"{a_path}, line {line + 1}: node {edges[line].max() + 1}, but {indicator_path.name} lists "
                        f"{nodes} nodes: {indicator_path.name} looks truncated after line {nodes}.")
    steps = np.diff(graph_of)
    jumps = np.flatnonzero((steps != 0) & (steps != 1))
    if graph_of[0] != 0 or jumps.size:
        line = 1 if graph_of[0] != 0 else jumps[0] + 2
        raise UserError(f"{indicator_path}, line {line}: graph ids must run in order from 1, each graph's nodes "
                        "together, no graph skipped.")
    if graph_of[-1] + 1 < count:
        raise UserError(f"{indicator_path}: its nodes belong to graphs 1..{graph_of[-1] + 1}, but {labels_path.name} "
                        f"has {count} labels (one per graph): {indicator_path.name} looks truncated after line {nodes}.")
    if graph_of[-1] + 1 > count:
        raise UserError(f"{labels_path}: {count} lines, but {indicator_path.name} numbers {graph_of[-1] + 1} graphs "
                        f"(one line per graph): {labels_path.name} looks truncated after line {count}.")
    crossing = np.flatnonzero(graph_of[edges[:, 0]] != graph_of[edges[:, 1]])
    if crossing.size:
        raise UserError(f"{a_path}, line {crossing[0] + 1}: an edge joins nodes of two different graphs.")
    if edge_labels is not None:
        _line_counts_agree((a_path, len(edges)), (folder / f"{name}_edge_labels.txt", edge_labels.size), "edge")
        _categories_in_range(folder / f"{name}_edge_labels.txt", edge_labels, "edge", len(edges))
    classes, sizes = np.unique(raw_labels, return_counts=True)
    if sizes.min() == 1 and count > 2:
        alone = classes[sizes == 1][0]
        raise UserError(f"{labels_path}, line {np.flatnonzero(raw_labels == alone)[0] + 1}: graph label {alone} "
                        f"is held by this graph alone; every class needs at least two graphs (classes here: "
                        f"{', '.join(map(str, classes[:8]))}).")
    # Without edge labels to count against, a cut A file shows as graphs at the end with nodes but no edge.
    with_edges = np.zeros(count, dtype=bool)
    with_edges[graph_of[edges[:, 0]]] = True
    last = int(np.flatnonzero(with_edges)[-1]) if with_edges.any() else -1
    trailing = np.bincount(graph_of, minlength=count)[last + 1:]
    if np.any(trailing >= 2):
        raise UserError(f"{a_path}: the last {trailing.size} of {count} graphs have no edge, though they hold "
                        f"{int(trailing.sum())} nodes: {a_path.name} looks truncated after line {len(edges)}.")


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

    node_labels_path = folder / f"{name}_node_labels.txt"
    node_labels = _integers(node_labels_path, 1) if node_labels_path.exists() else None
    edge_labels_path = folder / f"{name}_edge_labels.txt"
    edge_labels = _integers(edge_labels_path, 1) if edge_labels_path.exists() else None
    _check_files(folder, name, edges, graph_of, raw_labels, node_labels, edge_labels)
    nodes, count = graph_of.size, raw_labels.size

    edges = edges[edges[:, 0] != edges[:, 1]]
    both = np.concatenate([edges, edges[:, ::-1]])
    keys = np.unique(both[:, 0] * nodes + both[:, 1])  # undirected, merged, sorted by (source, target)
    edges = np.stack([keys // nodes, keys % nodes], axis=1)

    if node_labels is not None:
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
