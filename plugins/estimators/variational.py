"""Variational MI and f-divergence estimators: their parameters and their registration.

Each estimator is a (Params, objective) pair; the critic and the loop are shared, so every
bound sees the same score matrix and the same optimiser. The estimator itself lives in
variational_estimator.py and is imported (with torch) only when a spec is built: this module
is what every command imports, `mi-harness list` included, so it imports no torch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from harness import EstimatorSpec, Params, hookimpl
from plugins.estimators.divergence_names import DIVERGENCE_NAMES
from plugins.estimators.gemm_choice import chosen_by_user

Activation = Literal["relu", "elu", "leaky_relu", "tanh"]

Positive = Annotated[int, Field(gt=0, le=65_536)]  # a wider layer is a mistake, not a critic


class TrainingParams(Params):
    """The networks' shape, the optimiser and the data protocol, shared by critics and density models (their
    meaning is CriticParams')."""

    hidden: Positive = 64
    layers: Annotated[int, Field(ge=0, le=64)] = 3
    activation: Activation = "elu"
    lr: Annotated[float, Field(gt=0)] = 1e-3
    marginals: Literal["raw", "gaussianize"] = "gaussianize"
    heldout: Annotated[float, Field(gt=0, lt=1)] = 0.2
    checkpoint_every: Annotated[int, Field(ge=0)] = 50
    validation: Annotated[float, Field(gt=0, lt=1)] = 0.1
    value_batch: Annotated[int, Field(ge=0)] = 1000
    interval_resamples: Annotated[int, Field(ge=0, le=10_000)] = 20


class CriticParams(TrainingParams):
    """The critic, its optimiser and its data protocol. The defaults are the general-purpose configuration
    chosen on the Beyond-Normal core tasks with seeds never reported (docs/results.md): a separable critic
    of two 3 x 64 ELU MLPs with 16-d embeddings, Adam lr 1e-3, normal-score marginals, 20% of the samples
    held out, and the held-out value of the checkpoint best on a 10% validation split. The staircase
    protocol of Poole et al. (2019) is spelled out in suites/staircase.toml.

    heldout: the share of the samples that value the critic when they are too few for every step to
    see a fresh batch (harness.training); the critic trains on the rest. Unused when streaming.

    marginals = "gaussianize" maps each dimension of x and y to normal scores fitted on the
    training rows (plugins.estimators.marginals; MI tasks only). checkpoint_every > 0 holds back
    `validation` of the training rows and reports the held-out value of the checkpoint best on it
    (harness.training.Checkpoints); both splits are then valued in batches of `value_batch` rows
    (0: each split as one batch). Without checkpoints, the last critic is valued in training batches.
    interval_resamples: held-out subsets behind the 95% interval (harness.training.Intervals; 0: none).
    """

    critic: Literal["separable", "concat", "bilinear"] = "separable"
    embed_dim: Positive = 16


class MINEParams(CriticParams):
    ma_rate: Annotated[float, Field(gt=0, le=1)] = 0.01


class SMILEParams(CriticParams):
    tau: Annotated[float, Field(gt=0)] = 5.0


class BaselineParams(CriticParams):
    baseline_hidden: Positive = 64


class InterpolatedParams(BaselineParams):
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.5


class NCEParams(CriticParams):
    negatives: Annotated[float, Field(gt=0)] = 1.0


class FLOParams(CriticParams):
    u_hidden: Positive = 64  # the width of v in FLO's u(x, y) = v(x, y) - g(x, y)


class DensityParams(TrainingParams):
    """Estimators built on density models fit by maximum likelihood (plugins.estimators.densities): MLP heads of
    `layers` x `hidden`, each a mixture of `components` diagonal Gaussians (1: a diagonal-Gaussian head).
    Checkpoints are chosen by the held-out log-likelihood."""

    components: Annotated[int, Field(ge=1, le=64)] = 1


class BAParams(DensityParams):
    """entropy_y: h(Y) in nats, of y as the estimator sees it. Left out, a task that declares its entropies
    (harness.api.EntropyTask) gives it; marginals defaults to "raw", since the normal-score map changes h(Y)."""

    marginals: Literal["raw", "gaussianize"] = "raw"
    entropy_y: float | None = None

    @model_validator(mode="after")
    def _entropy_of_the_data_seen(self) -> BAParams:
        if self.entropy_y is not None and self.marginals == "gaussianize":
            raise ValueError("entropy_y is the entropy of y as given, and marginals = 'gaussianize' changes it: "
                             "use marginals = 'raw' with entropy_y")
        return self


class FGANParams(CriticParams):
    """marginals defaults to "raw": separate maps of P's and Q's samples would change D_f(P || Q)."""

    marginals: Literal["raw", "gaussianize"] = "raw"
    divergence: Literal[DIVERGENCE_NAMES] = "kl"  # type: ignore[valid-type]
    alpha: float | None = None

    @model_validator(mode="after")
    def _alpha_only_for_alpha(self) -> FGANParams:
        if (self.divergence == "alpha") != (self.alpha is not None):
            raise ValueError("give alpha (not 0 or 1) exactly when divergence = 'alpha'")
        return self


_BUILDERS = "plugins.estimators.variational_estimator"
ESTIMATORS = [
    ("infonce", "InfoNCE / CPC: multi-sample contrastive bound, capped at log B", CriticParams,
     "van den Oord et al. 2018, arXiv:1807.03748"),
    ("nwj", "NWJ = MINE-f, the f-form of KL: unbiased, variance grows like e^I", CriticParams,
     "Nguyen et al. 2010; Belghazi et al. 2018, arXiv:1801.04062"),
    ("mine", "MINE: Donsker-Varadhan value, moving-average corrected gradient", MINEParams,
     "Belghazi et al. 2018, arXiv:1801.04062"),
    ("js", "Deep InfoMax JS objective, valued as NWJ(S + 1) (no -1/e offset)", CriticParams,
     "Hjelm et al. 2019, arXiv:1808.06670; Poole et al. 2019"),
    ("smile", "SMILE: JS training, DV value with scores clipped to [-tau, tau]", SMILEParams,
     "Song & Ermon 2020, arXiv:1910.06222"),
    ("tuba", "TUBA with a learned baseline a(y)", BaselineParams, "Poole et al. 2019, arXiv:1905.06922"),
    ("interpolated", "Interpolated bound between NWJ/TUBA (alpha=0) and InfoNCE (alpha=1)", InterpolatedParams,
     "Poole et al. 2019, arXiv:1905.06922"),
    ("nce", "NCE: logistic joint-vs-marginal classifier, plug-in mean log-ratio", NCEParams,
     "Gutmann & Hyvarinen 2010"),
    ("fgan", "f-GAN lower bound of D_f (any f row); f-information on MI tasks", FGANParams,
     "Nowozin et al. 2016, arXiv:1606.00709"),
    ("flo", "FLO: Fenchel-Legendre lower bound with a second network u(x, y), not capped at log B", FLOParams,
     "Guo et al. 2022, arXiv:2107.01131"),
    ("club", "CLUB: upper bound from a learned conditional q(y|x)", DensityParams,
     "Cheng et al. 2020, arXiv:2006.12013"),
    ("club_sample", "CLUB with one sampled negative per pair: same value in expectation, noisier", DensityParams,
     "Cheng et al. 2020, arXiv:2006.12013"),
    ("l1out", "L1Out: leave-one-out upper bound from a learned conditional q(y|x)", DensityParams,
     "Poole et al. 2019, arXiv:1905.06922"),
    ("ba", "Barber-Agakov lower bound h(Y) + E log q(y|x); needs h(Y) (else use doe)", BAParams,
     "Barber & Agakov 2003"),
    ("doe", "Difference of entropies h(Y) - h(Y|X) from autoregressive density models", DensityParams,
     "McAllester & Stratos 2020, arXiv:1811.04251"),
    ("gm", "Generative MI: log q(x, y) - log q(x) - log q(y) from three density models", DensityParams,
     "Song & Ermon 2020, arXiv:1910.06222; torch-mist"),
]


@hookimpl
def register_estimators(register):
    """The variational MI bounds and the f-GAN family."""
    chosen_by_user()  # MI_HARNESS_CPU_GEMM, checked before any cell
    for name, summary, params, cite in ESTIMATORS:
        register(EstimatorSpec(name=name, summary=summary, params=params, cite=cite,
                               build=f"{_BUILDERS}:build_{name}"))
