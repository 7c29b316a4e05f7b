"""Graph encoders: Deep Graph Infomax (nodes of one graph) and InfoGraph / InfoGraph* (whole graphs).

Their parameters and their registration, without torch; the encoders themselves (dgi.py,
infograph.py, infograph_semi.py) are imported only when a spec is built.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from harness import EncoderSpec, Params, hookimpl

# Epochs between the checkpoints whose embeddings the harness also scores (0: none), for the
# checkpoint-selection accuracies beside the fixed protocol (harness.downstream).
CheckpointEvery = Annotated[int, Field(ge=0)]


class DGIParams(Params):
    hidden: int = 512
    lr: float = 0.001
    weight_decay: float = 0.0
    patience: int = 20
    random_init: bool = False
    checkpoint_every: CheckpointEvery = 50


class InfoGraphParams(Params):
    hidden: int = 32
    layers: int = 5
    lr: float = 0.001
    prior: bool = False
    gamma: float = 0.1
    random_init: bool = False
    checkpoint_every: CheckpointEvery = 1  # the reference evaluates after every epoch


class InfoGraphSemiParams(Params):
    hidden: int = 32
    layers: int = 5
    lr: float = 0.001
    unsupervised_weight: float = 1.0  # weight of the unsupervised encoder's local-global objective
    # lambda of the teacher-student MI term; 0.001 is the reference implementation's default
    teacher_student_weight: float = 0.001
    readout: Literal["embedding", "logits"] = "embedding"
    random_init: bool = False
    checkpoint_every: CheckpointEvery = 5


class SupervisedOnlyParams(Params):
    hidden: int = 32
    layers: int = 5
    lr: float = 0.001
    readout: Literal["embedding", "logits"] = "embedding"
    random_init: bool = False
    checkpoint_every: CheckpointEvery = 5


INFOGRAPH_PUBLISHED = {
    "mutag": (89.01, 1.13), "ptc_mr": (61.65, 1.43), "imdb_binary": (73.03, 0.87), "imdb_multi": (49.69, 0.53),
}


@hookimpl
def register_encoders(register):
    """DGI, InfoGraph, InfoGraph* and its supervised-only baseline."""
    register(EncoderSpec(
        name="dgi", summary="Deep Graph Infomax: 1-layer GCN, node vs graph-summary JS objective",
        params=DGIParams, build="plugins.encoders.dgi:build_dgi", cite="arXiv:1809.10341",
        published={"cora": (82.3, 0.6), "citeseer": (71.8, 0.7)},
    ))
    register(EncoderSpec(
        name="infograph", summary="InfoGraph: GIN encoder, node vs graph JS objective with in-batch negatives",
        params=InfoGraphParams, build="plugins.encoders.infograph:build_infograph", cite="arXiv:1908.01000",
        # the paper reports the best epoch's 10-fold mean accuracy (its code evaluates after every epoch)
        published=INFOGRAPH_PUBLISHED, published_selection="best_on_test",
    ))
    register(EncoderSpec(
        name="infograph_semi",
        summary="InfoGraph*: supervised + unsupervised GIN encoders joined by a teacher-student JS term",
        params=InfoGraphSemiParams, build="plugins.encoders.infograph_semi:build_infograph_semi",
        cite="arXiv:1908.01000", published_selection="best_on_validation",  # its code keeps the best validation epoch
    ))
    register(EncoderSpec(
        name="supervised_gin",
        summary="supervised-only baseline of InfoGraph*: the same GIN + classifier on the labelled graphs alone",
        params=SupervisedOnlyParams, build="plugins.encoders.infograph_semi:build_supervised_only",
        cite="arXiv:1908.01000", published_selection="best_on_validation",
    ))
