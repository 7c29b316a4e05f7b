"""Downstream evaluation of frozen embeddings, run by the harness for every encoder alike.

A dataset names its protocol in `evaluation`. A protocol scores one feature matrix as `Scores`: the test
accuracy (percent) of each of its units (the outer folds of a k-fold protocol, or the one fixed split), each
unit's selection score from labelled training data alone, and the spread over its repeats or folds.

`evaluate` scores the features the encoder fixed in advance and, where it kept checkpoints of the same
training run, every checkpoint, and reports from that one run:

- `accuracy_fixed` (also `accuracy`, the cell's estimate): the features fixed in advance;
- `accuracy_inner_cv`: per unit, the checkpoint whose selection score is best (ties: the later one), scored
  on that unit's test items; no test label is looked at to choose;
- `accuracy_best_on_test`: the checkpoint whose mean test accuracy is best, which looks at the test labels
  (optimistic);
- `accuracy_as_published`: whichever of these the encoder's paper used (`EncoderSpec.published_selection`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from harness.api import Embeddings, PublishedSelection
from harness.errors import UserError


@dataclass(frozen=True)
class Scores:
    test: np.ndarray  # (units,) test accuracy in percent
    select: np.ndarray  # (units,) selection score from labelled training data; NaN where none was asked for
    spread: float  # std over the protocol's classifier repeats or folds


Protocol = Callable[..., Scores]  # (features, labels, splits, seed, select: bool) -> Scores
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
PUBLISHED_METRIC: dict[PublishedSelection, str] = {
    "fixed": "accuracy_fixed", "best_on_test": "accuracy_best_on_test", "best_on_validation": "accuracy_inner_cv",
}


def _probe(seed: int) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))


def inner_cv_accuracy(features: np.ndarray, labels: np.ndarray, seed: int, folds: int = 5) -> float:
    """The linear probe's accuracy (%) by stratified k-fold CV on labelled training items alone; k is at most
    the rarest class's count, and NaN comes back where that is under 2."""
    folds = min(folds, int(np.unique(labels, return_counts=True)[1].min()))
    if folds < 2:
        return float("nan")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return 100.0 * float(np.mean(cross_val_score(_probe(seed), features, labels, cv=cv)))


def logistic_fixed_split(features, labels, splits, seed, select: bool = False) -> Scores:
    """Linear probe: logistic regression fit on the train split, accuracy on the test split; the selection score
    is the probe's inner CV accuracy on the train split."""
    train, test = splits["train"], splits["test"]
    probe = _probe(seed).fit(features[train], labels[train])
    chosen = inner_cv_accuracy(features[train], labels[train], seed) if select else float("nan")
    return Scores(np.array([100.0 * probe.score(features[test], labels[test])]), np.array([chosen]), 0.0)


def _rbf(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)  # libsvm's formula
    return np.exp(-gamma * squared)


def rbf_svm_accuracies(x: np.ndarray, y: np.ndarray, fit: np.ndarray, check: np.ndarray, scale: bool,
                       grid: tuple[float, ...] = C_GRID) -> list[float]:
    """Accuracy (%) on x[check] of an RBF SVC fit on x[fit], for each C of grid, as `SVC(C=C)` (gamma 'scale':
    1 / (features x variance of the fitting set)) after an optional StandardScaler fit on x[fit].

    One kernel matrix serves every C, which makes this about 5x faster than a GridSearchCV of SVC() with the
    same fits (tests/test_downstream.py checks both give the same accuracies).
    """
    a, b = x[fit], x[check]
    if scale:
        mean, std = a.mean(0), a.std(0)
        std[std == 0] = 1.0
        a, b = (a - mean) / std, (b - mean) / std
    variance = a.var()
    gamma = 1.0 / (a.shape[1] * variance) if variance != 0 else 1.0
    k_fit, k_check = _rbf(a, a, gamma), _rbf(b, a, gamma)
    return [100.0 * SVC(kernel="precomputed", C=c).fit(k_fit, y[fit]).score(k_check, y[check]) for c in grid]


def svm_kfold(features, labels, splits, seed, select: bool = False, folds: int = 10, scale: bool = True) -> Scores:
    """InfoGraph's protocol: 10-fold stratified CV of an RBF SVM whose C (1e-3 .. 1e3) is picked by 5-fold
    inner CV on the training folds; a fold's selection score is that inner CV's best accuracy.

    scale=False feeds the raw embeddings to the SVM, as InfoGraph's reference evaluation does.
    """
    x = np.asarray(features, dtype=np.float64)
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    test, chosen = [], []
    for train, held in outer.split(x, labels):
        inner = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        per_c = np.mean([rbf_svm_accuracies(x[train], labels[train], fit, check, scale)
                         for fit, check in inner.split(x[train], labels[train])], axis=0)
        best = int(np.argmax(per_c))  # the first of equal scores, as GridSearchCV ranks them
        test.append(rbf_svm_accuracies(x, labels, train, held, scale, C_GRID[best:best + 1])[0])
        chosen.append(per_c[best])
    return Scores(np.array(test), np.array(chosen), float(np.std(test)))


def logistic_repeats(features, labels, splits, seed, select: bool = False, repeats: int = 50, epochs: int = 100,
                     lr: float = 0.01) -> Scores:
    """DGI's protocol (Velickovic et al. 2019, sec. 4.3): a logistic regression on the raw frozen
    embeddings of the train split (Xavier init, Adam lr 0.01, 100 full-batch epochs), accuracy on
    the test split, repeated `repeats` times from different initialisations; mean and std over repeats.
    The selection score is the same probes' mean accuracy on the validation split, where the dataset has one.

    The repeats train as one model: one weight matrix per repeat, all of them in one matrix product.
    """
    import torch

    from harness.training import adam

    train, test = splits["train"], splits["test"]
    classes = int(labels[train].max()) + 1
    generator = torch.Generator().manual_seed(seed)
    x_train = torch.as_tensor(features[train], dtype=torch.float32)
    y_train = torch.as_tensor(labels[train], dtype=torch.int64)
    dim = x_train.shape[1]
    bound = (6.0 / (dim + classes)) ** 0.5  # Xavier-uniform, as torch.nn.init.xavier_uniform_
    weight = (torch.rand(repeats, dim, classes, generator=generator) * 2 - 1) * bound
    # Kept as the (dim, repeats x classes) operand of one matrix product for all repeats.
    weight = weight.permute(1, 0, 2).reshape(dim, repeats * classes).requires_grad_()
    bias = torch.zeros(repeats, 1, classes, requires_grad=True)
    optimizer = adam([weight, bias], lr=lr)

    def logits(x: torch.Tensor) -> torch.Tensor:  # repeats x items x classes
        return (x @ weight).view(len(x), repeats, classes).transpose(0, 1) + bias

    # The loss takes the classes as dimension 1, (repeats, classes, items): torch's log-softmax over a
    # last dimension of a few classes runs 4x slower than over a middle one.
    targets = y_train.expand(repeats, len(train))
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(logits(x_train).transpose(1, 2), targets, reduction="sum") / len(train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def accuracy(items: np.ndarray) -> torch.Tensor:
        predicted = logits(torch.as_tensor(features[items], dtype=torch.float32)).argmax(-1)
        return 100.0 * (predicted == torch.as_tensor(labels[items])).float().mean(1)

    per_repeat = accuracy(test)
    chosen = float(accuracy(splits["val"]).mean()) if select and "val" in splits else float("nan")
    return Scores(np.array([float(per_repeat.mean())]), np.array([chosen]), float(per_repeat.std(unbiased=False)))


PROTOCOLS: dict[str, Protocol] = {
    "logistic_fixed_split": logistic_fixed_split,
    "logistic_repeats": logistic_repeats,
    "svm_kfold": svm_kfold,
    "svm_kfold_unscaled": partial(svm_kfold, scale=False),
}


def _checked(features: Any, items: int, what: str) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim != 2 or array.shape[0] != items:
        raise UserError(f"the encoder's {what} have shape {array.shape}; give one row per dataset item, "
                        f"shape ({items}, dimensions)")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"encoder produced non-finite embeddings ({what})")
    return array


def evaluate(dataset, embeddings: Embeddings, seed: int,
             published_selection: PublishedSelection = "fixed") -> tuple[dict[str, float], dict[str, Any]]:
    """The cell's accuracy metrics (module docstring) and, for its diagnostics, which checkpoints were chosen
    ("final" is the features fixed in advance)."""
    protocol = PROTOCOLS.get(dataset.evaluation)
    if protocol is None:
        raise UserError(
            f"dataset asks for evaluation {dataset.evaluation!r}; known protocols: {', '.join(PROTOCOLS)}."
        )
    labels = np.asarray(dataset.labels)
    checkpoints = dict(embeddings.checkpoints or {})
    if not all(isinstance(key, int | np.integer) for key in checkpoints):
        raise UserError(f"the encoder's checkpoints are keyed by {sorted(map(repr, checkpoints))[:3]}; key them "
                        "by the epoch or step (an int)")

    def scored(features: Any, what: str) -> Scores:
        return protocol(_checked(features, len(labels), what), labels, dataset.splits, seed, select=bool(checkpoints))

    final = scored(embeddings.features, "features")
    fixed = float(final.test.mean())
    metrics = {"accuracy": fixed, "accuracy_std": final.spread, "accuracy_fixed": fixed}
    if not checkpoints:
        return metrics, {}
    keys = sorted(checkpoints)
    every = [scored(checkpoints[key], f"checkpoint {key} features") for key in keys] + [final]
    names: list[int | str] = [int(key) for key in keys] + ["final"]
    test = np.stack([s.test for s in every])  # checkpoints x units
    on_test = int(np.argmax(test.mean(1)))
    metrics["accuracy_best_on_test"] = float(test.mean(1)[on_test])
    chosen = {"best_on_test_checkpoint": names[on_test]}
    select = np.stack([s.select for s in every])
    if np.isfinite(select).all():
        latest = len(every) - 1 - np.argmax(select[::-1], axis=0)  # the later checkpoint of equal scores
        metrics["accuracy_inner_cv"] = float(test[latest, np.arange(test.shape[1])].mean())
        chosen["inner_cv_checkpoints"] = [names[i] for i in latest]
    if PUBLISHED_METRIC[published_selection] in metrics:
        metrics["accuracy_as_published"] = metrics[PUBLISHED_METRIC[published_selection]]
    return metrics, chosen
