"""Deep InfoMax and CPC encoders, and the raw-input baseline that serves every dataset.

Both train on the dataset's train split only (labels unused), in shuffled batches of `batch_size`
(capped at the split's size; a ragged last batch is dropped because every bound depends on B).
DIM trains for `budget.epochs` passes; CPC for `budget.steps` optimiser updates, because its
datasets differ 40-fold in size (one epoch of GunPoint is one batch). `random_init = True` returns the same architecture untrained,
seeded by the cell's seed: the random-encoder baseline.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from harness import EncoderSpec, Params, hookimpl
from harness.api import Budget, Embeddings


class DIMParams(Params):
    objective: Literal["js", "dv", "infonce", "nwj"] = "js"
    # DIM(L), the paper's best setting for classification: local MI and prior matching only.
    alpha: float = 0.0  # global MI weight
    beta: float = 1.0  # local MI weight
    gamma: float = 0.1  # prior-matching weight
    embedding_dim: int = 16  # the global vector the probe reads: a 4x compression of an 8x8 image
    critic_dim: int = 128
    lr: float = 3e-4
    random_init: bool = False
    checkpoint_every: Annotated[int, Field(ge=0)] = 5  # epochs between scored checkpoints (0: none)


class CPCParams(Params):
    steps_ahead: int = 3
    window: int = 16  # samples per step when the items are series
    latent_dim: int = 64
    context_dim: int = 64
    # "all" = [c_T, mean_t c_t, mean_t z_t]: the last context, and what every step saw.
    readout: Literal["context_last", "context_mean", "encoder_mean", "all"] = "all"
    lr: float = 1e-3
    random_init: bool = False
    checkpoint_every: Annotated[int, Field(ge=0)] = 50  # steps between scored checkpoints (0: none)


class RawParams(Params):
    random_init: bool = False  # accepted so a grid over random_init can include the baseline; no effect


class DIM:
    def __init__(self, params: DIMParams) -> None:
        self.params = params

    def fit(self, dataset: Any, budget: Budget, device: str, seed: int) -> Embeddings:
        from plugins.encoders.dim import fit_dim

        return fit_dim(self.params, dataset, budget, device, seed)


class CPC:
    def __init__(self, params: CPCParams) -> None:
        self.params = params

    def fit(self, dataset: Any, budget: Budget, device: str, seed: int) -> Embeddings:
        from plugins.encoders.cpc import fit_cpc

        return fit_cpc(self.params, dataset, budget, device, seed)


@hookimpl
def register_encoders(register):
    """dim (Deep InfoMax), cpc (Contrastive Predictive Coding) and raw (the raw-input baseline)."""
    register(EncoderSpec(
        name="dim", summary="Deep InfoMax: global + local MI (JS, DV or InfoNCE) and adversarial prior matching",
        params=DIMParams, build=DIM, cite="Hjelm et al. 2019 (arXiv:1808.06670)",
    ))
    register(EncoderSpec(
        name="cpc", summary="Contrastive Predictive Coding: conv encoder, GRU context, k-step InfoNCE",
        params=CPCParams, build=CPC, cite="van den Oord et al. 2018 (arXiv:1807.03748)",
    ))
    register(EncoderSpec(
        name="raw", summary="raw-input baseline: flattened inputs, node features, or sum-pooled graph features",
        params=RawParams, build="plugins.encoders.raw:RawInput",
    ))
