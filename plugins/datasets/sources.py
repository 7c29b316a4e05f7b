"""Where each real dataset comes from: its publisher's URL, the files it installs, and their SHA-256.

The table behind `mi-harness data fetch / check` (plugins.datasets.commands). Every file is pinned to
the SHA-256 of the file as its publisher serves it; `harness.download` installs and verifies them.

- Cora, Citeseer: the `ind.<name>.*` files of the GCN paper's repository (Kipf & Welling 2017,
  tkipf/gcn, `gcn/data/`; the splits of Yang et al. 2016), one URL per file.
- MUTAG, PTC_MR, IMDB-BINARY, IMDB-MULTI: the TU Dortmund collection (Morris et al. 2020), one zip per
  dataset holding the folder `NAME/` with the `NAME_*.txt` files (and, for some, a README.txt).
- Trace, GunPoint, Coffee: the UCR archive's 2018 release (Dau et al. 2019), `UCRArchive_2018.zip` from
  the archive's own site, the one place that publishes the `NAME/NAME_TRAIN.tsv` / `NAME_TEST.tsv`
  files this loader reads (timeseriesclassification.com serves .ts/.arff/.txt files of other bytes).
  It is a single archive of all 128 sets, so fetch the three together: it is downloaded once per
  command. Its members are ZipCrypto-encrypted with the password its briefing document publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.download import Pinned
from harness.errors import unknown_name
from plugins.datasets.graphs import PLANETOID, TU
from plugins.datasets.vision_series import UCR

FETCH_COMMAND = "mi-harness data fetch"
PLANETOID_URL = "https://raw.githubusercontent.com/tkipf/gcn/master/gcn/data"
TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets"
UCR_URL = "https://www.cs.ucr.edu/~eamonn/time_series_data_2018/UCRArchive_2018.zip"
UCR_FOLDER = "UCRArchive_2018"  # the archive's top folder
UCR_PASSWORD = b"someone"  # printed in the archive's BriefingDocument2018.pdf (page 13) for every reader

# SHA-256 of every installed file, by folder under the data root.
PINS: dict[str, dict[str, str]] = {
    "planetoid/cora/raw": {
        "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
        "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
        "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
        "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
        "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
        "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
        "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
        "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    },
    "planetoid/citeseer/raw": {
        "ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
        "ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
        "ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
        "ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
        "ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
        "ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
        "ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
        "ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
    },
    "tu/MUTAG": {
        "MUTAG_A.txt": "d9656ca7493f3445d737c711710bb36fd432dddd1c0ea32e1d4713c86ebd28e2",
        "MUTAG_edge_labels.txt": "4669ce755075ff86c3240709345745886400908fa637a49310459b9c267b3e56",
        "MUTAG_graph_indicator.txt": "7d520a4d6c7961c0cdeabe076d8fe27e795b6d373485c9a2b744987e560a2056",
        "MUTAG_graph_labels.txt": "a1518ea39ba3426bd42f57396b9c4baffe68e9adc718caeeab0119c6591a5f2c",
        "MUTAG_node_labels.txt": "678f429965490e84dd27713017538c995fc05d1621beac910848b600015ee863",
        "README.txt": "66de65e4826e112482ec680bbbdf7c0af56d826ce935c110786d130b79b76b06",
    },
    "tu/PTC_MR": {
        "PTC_MR_A.txt": "f79523ff94dfbef539e5602a8ac1931a50a2800f33fa1d30e5e31725289b5202",
        "PTC_MR_edge_labels.txt": "acee2f93b52175a329009dc837bea9db7c2a121c2ef0b1587b38bbe6fc9b8177",
        "PTC_MR_graph_indicator.txt": "d52754f3cbc54e29324f884b4c17200c16e06db0c499afae300b4fa1bb6d794b",
        "PTC_MR_graph_labels.txt": "64210accbe4c6c027535b1294e0da652b1f539667f7a2d4bf5121dcd8b00a224",
        "PTC_MR_node_labels.txt": "cc50d1e1c5f4c98b2100cf50c5ddd88ff28b419a9180d531046b75ce22983235",
        "README.txt": "f0dcf17d5e115efb4db51d6be6ca629181ca9cdef9f975663dd054a3c779c52a",
    },
    "tu/IMDB-BINARY": {
        "IMDB-BINARY_A.txt": "23c8964bab82f81469271186d721131714a265d0ca8c44ae048118da1d0c4092",
        "IMDB-BINARY_graph_indicator.txt": "415cc3ba25b8c647dcf34d3de034f675ee070616f3b803be939cb26773489f26",
        "IMDB-BINARY_graph_labels.txt": "63a44411fd6342b9c4429828c16e144a2a11ef5244e25bb60f0ffa8b3ee2ffce",
    },
    "tu/IMDB-MULTI": {
        "IMDB-MULTI_A.txt": "fb538b23758d78df199272301e57dc74ad5754d6c3d79d5ed0a343193ddf4ec6",
        "IMDB-MULTI_graph_indicator.txt": "0274532a0e47dad9cdd21c08995c2265e43040a2c2a3b36c62fdb790994571d3",
        "IMDB-MULTI_graph_labels.txt": "613c2357b6b996f6f04b91697a99da87774820f9d08bf22813992f4c7afda855",
    },
    "ucr/Trace": {
        "Trace_TEST.tsv": "ef53ca4c52e0e51aab39844005d0f8b5438d2114570199ed015cf3d04500edfa",
        "Trace_TRAIN.tsv": "450f51470b57fb0dd51564a2f03f2e2a0e768db8af12431f31a13ef518654f94",
    },
    "ucr/GunPoint": {
        "GunPoint_TEST.tsv": "aed1ca87b167d921cf18c1eef7008969fc5c0147fbf37fabec1be4563984042a",
        "GunPoint_TRAIN.tsv": "9e74af61e20c25046a18e8e6c3db7be7a3363c6873f538f2700a1db91f4e5100",
    },
    "ucr/Coffee": {
        "Coffee_TEST.tsv": "7ec4857e7ef2427dbb66b2992fa0464718e1609a27c8c449eb9934d505813b3e",
        "Coffee_TRAIN.tsv": "2495879bf8c537d88346d4521f23956e8dfddbd3050d6f9a10a068bbff9fd1f9",
    },
}


@dataclass(frozen=True)
class DatasetSource:
    """One dataset's files: its name (as `mi-harness list datasets` shows it), folder and publisher."""

    name: str
    folder: str  # under the data root, as the loader reads it
    publisher: str  # where the files come from, for people
    files: tuple[Pinned, ...]


def _planetoid(name: str) -> DatasetSource:
    folder = f"planetoid/{name}"
    files = tuple(Pinned(f"{folder}/raw/{file}", sha, f"{PLANETOID_URL}/{file}")
                  for file, sha in PINS[f"{folder}/raw"].items())
    return DatasetSource(name, folder, f"{PLANETOID_URL}/ind.{name}.*", files)


def _tu(name: str, archive_folder: str) -> DatasetSource:
    folder = f"tu/{archive_folder}"
    url = f"{TU_URL}/{archive_folder}.zip"
    files = tuple(Pinned(f"{folder}/{file}", sha, url, member=f"{archive_folder}/{file}")
                  for file, sha in PINS[folder].items())
    return DatasetSource(name, folder, url, files)


def _ucr(name: str, archive_folder: str) -> DatasetSource:
    folder = f"ucr/{archive_folder}"
    files = tuple(Pinned(f"{folder}/{file}", sha, UCR_URL, member=f"{UCR_FOLDER}/{archive_folder}/{file}",
                         password=UCR_PASSWORD) for file, sha in PINS[folder].items())
    return DatasetSource(name, folder, f"{UCR_URL} ({UCR_FOLDER}/{archive_folder}/)", files)


SOURCES: dict[str, DatasetSource] = {
    **{name: _planetoid(name) for name in PLANETOID},
    **{name: _tu(name, folder) for name, (folder, _summary) in TU.items()},
    **{name: _ucr(name, folder) for name, (folder, _summary) in UCR.items()},
}


def select(names: tuple[str, ...]) -> list[DatasetSource]:
    """The sources `names` ask for ("all", a dataset's name, or its folder's name), in table order."""
    if not names or "all" in names:
        return list(SOURCES.values())
    by_alias = {alias.casefold(): source for source in SOURCES.values()
                for alias in (source.name, source.folder.rsplit("/", 1)[-1])}
    chosen = []
    for name in names:
        source = by_alias.get(name.casefold())
        if source is None:
            raise unknown_name("dataset", name, ["all", *SOURCES])
        if source not in chosen:
            chosen.append(source)
    return chosen


def fetch_hint(*parts: str) -> str:
    """How to install the dataset in folder `parts` of the data root ("" when no source publishes it)."""
    folder = "/".join(parts)
    source = next((source for source in SOURCES.values() if source.folder == folder), None)
    return f"dataset {source.name!r} is not installed there, run: {FETCH_COMMAND} {source.name}" if source else ""
