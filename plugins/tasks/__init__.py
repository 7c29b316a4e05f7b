"""Synthetic tasks with known ground truth: MI tasks, their invertible transforms, divergence pairs."""

from harness import NoParams, TaskSpec, hookimpl

BEYOND_NORMAL = "Czyz et al. 2023, Beyond Normal: On the Evaluation of Mutual Information Estimators, arXiv:2306.11078"
MIXTURES = ("Czyz et al. 2023, The Mixtures and the Neural Critics: On the Pointwise Mutual Information "
            "Profiles of Fine Distributions, arXiv:2310.10240")
POOLE = "Poole et al. 2019, On Variational Bounds of Mutual Information, arXiv:1905.06922"
QUANTISATION = "Cover & Thomas 2006, Elements of Information Theory, sec. 8.3 (differential and discrete entropy)"
SYMMETRIC_CHANNEL = "Cover & Thomas 2006, Elements of Information Theory, sec. 7.2 (symmetric channels)"

_MODULE = "plugins.tasks"


@hookimpl
def register_tasks(register):
    """Every built-in task; transforms compose on any registered MI task through their `base` field."""
    from plugins.tasks import params as p

    def add(name: str, summary: str, params, build: str, cite: str) -> None:
        register(TaskSpec(name=name, summary=summary, params=params, build=build, cite=cite))

    add("gaussian", "correlated Gaussian pairs (X_i, Y_i) with a chosen total MI; closed form",
        p.GaussianParams, f"{_MODULE}.gaussian:build_gaussian", POOLE)
    add("staircase", "Poole et al.'s 20-d correlated Gaussian at one MI level; closed form",
        p.StaircaseParams, f"{_MODULE}.gaussian:build_staircase", POOLE)
    add("staircase_cubic", "the staircase with y <- y^3 (same MI); closed form",
        p.StaircaseCubicParams, f"{_MODULE}.transforms:build_staircase_cubic", POOLE)
    add("multinormal_dense", "Gaussian with every off-diagonal correlation equal; closed form",
        p.DenseParams, f"{_MODULE}.gaussian:build_dense", BEYOND_NORMAL)
    add("multinormal_sparse", "Gaussian with `pairs` interacting (X_i, Y_i) pairs; closed form",
        p.SparseParams, f"{_MODULE}.gaussian:build_sparse", BEYOND_NORMAL)
    add("high_mi", "independent strongly correlated Gaussian pairs (high total MI); closed form",
        p.HighMIParams, f"{_MODULE}.gaussian:build_high_mi", BEYOND_NORMAL)
    for name, (summary, params) in p.TRANSFORMS.items():
        add(name, f"{summary}; MI of the base task", params, f"{_MODULE}.transforms:build_{name}", BEYOND_NORMAL)

    add("rotate", "Beyond Normal's fixed rotation (exp of so(n) generators) of each side, dims >= 3; "
        "MI of the base task", p.TransformParams, f"{_MODULE}.transforms:build_rotate", BEYOND_NORMAL)
    add("spiral_beyond_normal", "Beyond Normal's spiral: X turned in plane (0,1), Y in (1,2), speed / dim; "
        "MI of the base task", p.SpiralBeyondNormalParams, f"{_MODULE}.transforms:build_spiral_beyond_normal",
        BEYOND_NORMAL)
    add("multinormal_lvm", "Gaussian from Beyond Normal's latent model (dense + pairs + block parts); closed form",
        p.LVMParams, f"{_MODULE}.beyond_normal:build_lvm", BEYOND_NORMAL)
    add("student_dense", "multivariate Student-t, every dispersion correlation equal; closed form",
        p.StudentDenseParams, f"{_MODULE}.beyond_normal:build_student_dense", BEYOND_NORMAL)
    add("student_t", "multivariate Student-t, sparse dispersion; closed form from entropies",
        p.StudentParams, f"{_MODULE}.student:build_student", BEYOND_NORMAL)
    add("additive_uniform", "X ~ U(0,1), Y = X + U(-eps, eps); closed form",
        p.AdditiveUniformParams, f"{_MODULE}.low_dimensional:build_additive_uniform", BEYOND_NORMAL)
    add("discrete_continuous", "X uniform on k classes, Y | X ~ N(spacing X, sigma^2); 1-D quadrature",
        p.DiscreteContinuousParams, f"{_MODULE}.discrete:build_discrete_continuous",
        BEYOND_NORMAL)
    add("quantized_gaussian", "correlated Gaussian pairs, each coordinate quantised into bins levels; exact cell sums",
        p.QuantizedGaussianParams, f"{_MODULE}.discrete:build_quantized_gaussian", QUANTISATION)
    add("noisy_channel", "X uniform on k symbols, Y = X or (probability eps) another symbol; closed form",
        p.NoisyChannelParams, f"{_MODULE}.discrete:build_noisy_channel", SYMMETRIC_CHANNEL)
    add("mixture_x", "1x1 mixture of two Gaussians correlated +rho and -rho (an X); Monte Carlo",
        p.XParams, f"{_MODULE}.mixtures:build_x", MIXTURES)
    add("mixture_ai", "1x1 six-Gaussian mixture drawing the letters AI; Monte Carlo",
        NoParams, f"{_MODULE}.mixtures:build_ai", MIXTURES)
    add("galaxy", "2x1 two-ball Gaussian mixture with X spiralled; Monte Carlo",
        p.GalaxyParams, f"{_MODULE}.mixtures:build_galaxy", MIXTURES)
    add("waves", "2x1 Gaussian mixture (12 components) with X sheared into waves; Monte Carlo",
        p.WavesParams, f"{_MODULE}.mixtures:build_waves", MIXTURES)
    add("concentric_gaussians", "dim_x x 1 concentric isotropic Gaussians tagged by Y; Monte Carlo",
        p.ConcentricParams, f"{_MODULE}.mixtures:build_concentric", MIXTURES)
    add("multinormal_sparse_inliers", "multinormal_sparse mixed with its product of marginals; Monte Carlo",
        p.InliersParams, f"{_MODULE}.mixtures:build_inliers", MIXTURES)
    add("gaussian_pair", "divergence task: P = N(0, I), Q = N(shift, ratio^2 I); closed forms, else MC",
        p.GaussianPairParams, f"{_MODULE}.divergence_pairs:build_gaussian_pair",
        "Nowozin et al. 2016, f-GAN, arXiv:1606.00709")
