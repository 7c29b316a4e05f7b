"""Downstream evaluation of frozen embeddings, run by the harness for every encoder alike.

A dataset names its protocol in `evaluation`; each protocol returns accuracy in percent
(mean and std over its repeats or folds) so reports can put it beside the paper's number.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from harness.errors import UserError

Protocol = Callable[[np.ndarray, np.ndarray, dict[str, np.ndarray], int], dict[str, float]]


def logistic_fixed_split(features, labels, splits, seed) -> dict[str, float]:
    """Linear probe: logistic regression fit on the train split, accuracy on the test split."""
    train, test = splits["train"], splits["test"]
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(features[train], labels[train])
    accuracy = 100.0 * probe.score(features[test], labels[test])
    return {"accuracy": accuracy, "accuracy_std": 0.0}


def svm_kfold(features, labels, splits, seed, folds: int = 10, scale: bool = True) -> dict[str, float]:
    """InfoGraph's protocol: 10-fold stratified CV of an SVM whose C is picked by inner CV.

    scale=False feeds the raw embeddings to the RBF SVM, as InfoGraph's reference evaluation does.
    """
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    grid = {"svc__C": [1e-3, 1e-2, 1e-1, 1, 10, 100, 1000]}
    scores = []
    for train, test in outer.split(features, labels):
        inner = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        steps = [StandardScaler(), SVC()] if scale else [SVC()]
        search = GridSearchCV(make_pipeline(*steps), grid, cv=inner)
        search.fit(features[train], labels[train])
        scores.append(100.0 * search.score(features[test], labels[test]))
    return {"accuracy": float(np.mean(scores)), "accuracy_std": float(np.std(scores))}


def logistic_repeats(features, labels, splits, seed, repeats: int = 50, epochs: int = 100,
                     lr: float = 0.01) -> dict[str, float]:
    """DGI's protocol (Velickovic et al. 2019, sec. 4.3): a logistic regression on the raw frozen
    embeddings of the train split (Xavier init, Adam lr 0.01, 100 full-batch epochs), accuracy on
    the test split, repeated `repeats` times from different initialisations; mean and std over repeats.

    The repeats train as one batched model (one weight matrix per repeat).
    """
    import torch

    train, test = splits["train"], splits["test"]
    classes = int(labels[train].max()) + 1
    generator = torch.Generator().manual_seed(seed)
    x_train = torch.as_tensor(features[train], dtype=torch.float32)
    y_train = torch.as_tensor(labels[train], dtype=torch.int64)
    dim = x_train.shape[1]
    bound = (6.0 / (dim + classes)) ** 0.5  # Xavier-uniform, as torch.nn.init.xavier_uniform_
    weight = ((torch.rand(repeats, dim, classes, generator=generator) * 2 - 1) * bound).requires_grad_()
    bias = torch.zeros(repeats, 1, classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    for _ in range(epochs):
        logits = x_train @ weight + bias  # repeats x train x classes
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, classes), y_train.repeat(repeats), reduction="sum"
        ) / len(train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = (torch.as_tensor(features[test], dtype=torch.float32) @ weight + bias).argmax(-1)
        per_repeat = 100.0 * (predicted == torch.as_tensor(labels[test])).float().mean(1)
    return {"accuracy": float(per_repeat.mean()), "accuracy_std": float(per_repeat.std(unbiased=False))}


PROTOCOLS: dict[str, Protocol] = {
    "logistic_fixed_split": logistic_fixed_split,
    "logistic_repeats": logistic_repeats,
    "svm_kfold": svm_kfold,
    "svm_kfold_unscaled": partial(svm_kfold, scale=False),
}


def evaluate(dataset, features: np.ndarray, seed: int) -> dict[str, float]:
    protocol = PROTOCOLS.get(dataset.evaluation)
    if protocol is None:
        raise UserError(
            f"dataset asks for evaluation {dataset.evaluation!r}; known protocols: {', '.join(PROTOCOLS)}."
        )
    if not np.all(np.isfinite(features)):
        raise ValueError("encoder produced non-finite embeddings")
    return protocol(features, np.asarray(dataset.labels), dataset.splits, seed)
