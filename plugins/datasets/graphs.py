"""Graph datasets: Planetoid citation graphs for DGI, TU graph-classification sets for InfoGraph.

Everything is read from the data root (harness.dataroot): planetoid/<name>/raw/ind.<name>.* and
tu/<NAME>/<NAME>_*.txt, in the formats their authors publish. Loading never downloads; this plugin
also adds `mi-harness data fetch / check` (plugins.datasets.commands), which installs and verifies the
files of every dataset of this package (these and the UCR series) from their publishers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness import DatasetSpec, NoParams, Params, hookimpl
from harness.errors import UserError

PLANETOID = {
    "cora": "Cora citation graph: 2708 papers, 1433 word features, 7 classes, public 140/500/1000 split",
    "citeseer": "Citeseer citation graph: 3327 papers, 3703 word features, 6 classes, public 120/500/1000 split",
}
TU = {
    "mutag": ("MUTAG", "188 nitro compounds, mutagenic or not; node features one-hot atom type"),
    "ptc_mr": ("PTC_MR", "344 compounds, carcinogenic in male rats or not; node features one-hot atom type"),
    "imdb_binary": ("IMDB-BINARY", "1000 movie ego-networks, action vs romance; node features one-hot degree"),
    "imdb_multi": ("IMDB-MULTI", "1500 movie ego-networks, 3 genres; node features one-hot degree"),
}
PLANETOID_CITE = "Yang, Cohen & Salakhutdinov 2016 (arXiv:1603.08861); split of Kipf & Welling 2017"
TU_CITE = "Morris et al. 2020, TUDataset (arXiv:2007.08663)"


class SemiSupervisedParams(Params):
    labelled_fraction: float = 0.1
    split_seed: int = 0


def labelled_split(labels: np.ndarray, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Stratified labelled subset (at least one graph per class) as "train"; every other graph is "test"."""
    if not 0.0 < fraction < 1.0:
        raise UserError(f"labelled_fraction must lie strictly between 0 and 1, got {fraction}.")
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        take = max(1, int(round(fraction * members.size)))
        chosen.append(rng.choice(members, size=take, replace=False))
    train = np.sort(np.concatenate(chosen))
    test = np.setdiff1d(np.arange(labels.size), train)
    return {"train": train, "test": test}


def _planetoid(name: str):
    def build(_params: Params) -> Any:
        from plugins.datasets.planetoid import load_planetoid

        return load_planetoid(name)

    return build


def _tu(folder: str):
    def build(_params: Params) -> Any:
        from plugins.datasets.tu import load_tu

        return load_tu(folder)

    return build


def _tu_semi(folder: str):
    def build(params: SemiSupervisedParams) -> Any:
        from plugins.datasets.tu import load_tu

        data = load_tu(folder)
        data.splits = labelled_split(data.labels, params.labelled_fraction, params.split_seed)
        data.evaluation = "logistic_fixed_split"
        return data

    return build


@hookimpl
def register_datasets(register):
    """Cora, Citeseer (node classification) and MUTAG, PTC_MR, IMDB-BINARY, IMDB-MULTI (graph classification)."""
    for name, summary in PLANETOID.items():
        register(DatasetSpec(name=name, summary=summary, params=NoParams, build=_planetoid(name),
                             cite=PLANETOID_CITE))
    for name, (folder, summary) in TU.items():
        register(DatasetSpec(name=name, summary=f"{folder}: {summary}", params=NoParams, build=_tu(folder),
                             cite=TU_CITE))
        register(DatasetSpec(
            name=f"{name}_semi",
            summary=f"{folder} with only a labelled fraction of graphs (semi-supervised; probe on the rest)",
            params=SemiSupervisedParams, build=_tu_semi(folder), cite=TU_CITE,
        ))


@hookimpl
def register_commands(cli):
    """`mi-harness data fetch / check` for the datasets of plugins.datasets.sources."""
    from plugins.datasets.commands import data

    cli.add_command(data)
