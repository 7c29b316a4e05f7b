"""scikit-learn's bundled 8x8 digits, and sequences of them that follow a rule (a small CPC check).

Digit sequences: a sequence of `length` digit images whose classes count up by one mod 10 from a
random start (e.g. 7 8 9 0 1 ...). Each image is drawn at random among the images of its class,
so predicting the next image's latent requires recognising the digit. The label of a sequence is
the class of its *last* image: that is what CPC's context c_T must know to predict the next steps
(class + k), so a linear probe on the sequence's representation asks exactly the question the
objective trains for. Train sequences are built only from train-split images and test sequences
only from test-split images, so no test image is ever seen in training.
"""

from __future__ import annotations

import numpy as np

from harness.errors import UserError
from plugins.datasets.arrays import ArrayDataset


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}.")
    rng = np.random.default_rng(seed)
    test = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        test.append(members[: max(1, int(round(test_fraction * members.size)))])
    test_idx = np.sort(np.concatenate(test))
    return {"train": np.setdiff1d(np.arange(labels.size), test_idx), "test": test_idx}


def load_digits_dataset(test_fraction: float = 0.25, split_seed: int = 0) -> ArrayDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]  # pixel values are 0..16
    labels = bunch.target.astype(np.int64)
    return ArrayDataset(
        name="digits",
        items="images",
        inputs=images,
        labels=labels,
        splits=stratified_split(labels, test_fraction, split_seed),
        num_classes=10,
        description="scikit-learn 8x8 digits, 1797 images, 10 classes",
    )


def _sequences(images: np.ndarray, labels: np.ndarray, count: int, length: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    starts = rng.integers(0, 10, size=count)
    classes = (starts[:, None] + np.arange(length)[None, :]) % 10
    picks = np.empty_like(classes)
    for c in range(10):
        where = classes == c
        picks[where] = rng.choice(by_class[c], size=int(where.sum()))
    return images[picks], classes[:, -1]


def make_digit_sequences(length: int = 8, n_train: int = 2000, n_test: int = 1000,
                         seed: int = 0) -> ArrayDataset:
    if length < 2:
        raise UserError(f"digit sequences need length >= 2 to have something to predict, got {length}.")
    if n_train < 10 or n_test < 10:
        raise UserError(f"n_train and n_test must each be at least 10, got {n_train} and {n_test}.")
    digits = load_digits_dataset()
    rng = np.random.default_rng(seed)
    parts = [
        _sequences(digits.inputs[idx], digits.labels[idx], count, length, rng)
        for idx, count in ((digits.splits["train"], n_train), (digits.splits["test"], n_test))
    ]
    inputs = np.concatenate([p[0] for p in parts])  # N x T x 1 x 8 x 8
    labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
    return ArrayDataset(
        name="digit_sequences",
        items="sequences",
        inputs=inputs.astype(np.float32),
        labels=labels,
        splits={"train": np.arange(n_train), "test": np.arange(n_train, n_train + n_test)},
        num_classes=10,
        description=f"{n_train}+{n_test} sequences of {length} 8x8 digits counting up mod 10; label = last digit",
    )
