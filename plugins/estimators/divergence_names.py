"""The names of the f-divergence table's rows (plugins.estimators.divergences), without torch.

Parameters that choose a row (the f-GAN estimator's `divergence`) list these when they are
registered, which must stay cheap; the rows themselves are torch and live in divergences.py.
"""

DIVERGENCE_NAMES: tuple[str, ...] = (
    "tv", "kl", "reverse_kl", "pearson", "neyman", "hellinger", "jeffrey", "js", "gan_js", "alpha",
)
