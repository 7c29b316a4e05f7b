"""Graph encoders: Deep Graph Infomax (nodes of one graph) and InfoGraph / InfoGraph* (whole graphs)."""

from __future__ import annotations

from harness import EncoderSpec, hookimpl
from plugins.encoders.dgi import DGIParams


@hookimpl
def register_encoders(register):
    """DGI, InfoGraph, InfoGraph* and its supervised-only baseline."""
    register(EncoderSpec(
        name="dgi", summary="Deep Graph Infomax: 1-layer GCN, node vs graph-summary JS objective",
        params=DGIParams, build="plugins.encoders.dgi:build_dgi", cite="arXiv:1809.10341",
        published={"cora": (82.3, 0.6), "citeseer": (71.8, 0.7)},
    ))
