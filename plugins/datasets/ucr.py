"""UCR 2018 archive series (Dau et al. 2019): `NAME/NAME_TRAIN.tsv` and `NAME/NAME_TEST.tsv`.

One series per line, the class label first, values tab-separated. The archive's own TRAIN/TEST
files are the split. Labels are mapped, in sorted order, to 0..C-1.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness.dataroot import dataset_path
from harness.errors import UserError
from plugins.datasets.arrays import ArrayDataset
from plugins.datasets.sources import fetch_hint

DELIMITERS = ((",", "commas"), (";", "semicolons"), ("|", "vertical bars"), (":", "colons"))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_ucr_tsv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels as read, series N x L float32) from one UCR TSV file, validating every line."""
    if path.is_dir():
        raise UserError(f"{path} is a folder, but UCR keeps each split in one file of tab-separated series.")
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a text file; UCR files hold one tab-separated series per line.") from err
    labels: list[float] = []
    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().split("\t") if "\t" in line else line.split()
        delimiter = next((called for mark, called in DELIMITERS if len(fields) == 1 and mark in line), None)
        if delimiter:  # named, never quoted: the line may be thousands of characters
            raise UserError(f"{path}, line {number}: every field must be a number, separated by tabs (label first, "
                            f"then the series), but this file separates them with {delimiter}.")
        try:
            values = [float(v) for v in fields]
        except ValueError:
            bad = next(i for i, v in enumerate(fields, start=1) if not _is_number(v))
            raise UserError(
                f"{path}, line {number}: every field must be a number (label first, then the series); "
                f"field {bad} of {len(fields)} is not."
            ) from None
        if len(values) < 2:
            raise UserError(f"{path}, line {number}: a label and at least one value are needed.")
        if rows and len(values) - 1 != len(rows[0]):
            raise UserError(
                f"{path}, line {number}: series of length {len(values) - 1}, but earlier lines have "
                f"length {len(rows[0])}; this loader reads equal-length series only."
            )
        if not all(math.isfinite(v) for v in values):
            raise UserError(f"{path}, line {number}: missing or non-finite values (NaN/inf) are not supported.")
        if values[0] != int(values[0]):
            raise UserError(f"{path}, line {number}: the class label {fields[0]!r} is not an integer.")
        labels.append(values[0])
        rows.append(values[1:])
    if not rows:
        raise UserError(f"{path}: the file holds no series.")
    return np.asarray(labels, dtype=np.int64), np.asarray(rows, dtype=np.float32)


def load_ucr(name: str) -> ArrayDataset:
    hint = fetch_hint("ucr", name)
    train_path = dataset_path("ucr", name, f"{name}_TRAIN.tsv", install_hint=hint)
    test_path = dataset_path("ucr", name, f"{name}_TEST.tsv", install_hint=hint)
    train_labels, train_series = read_ucr_tsv(train_path)
    test_labels, test_series = read_ucr_tsv(test_path)
    if train_series.shape[1] != test_series.shape[1]:
        raise UserError(
            f"{test_path}: series of length {test_series.shape[1]}, but {train_path.name} has length "
            f"{train_series.shape[1]}."
        )
    classes = np.unique(train_labels)
    unseen = np.setdiff1d(test_labels, classes)
    if unseen.size:
        raise UserError(f"{test_path}: label(s) {unseen.tolist()} never occur in {train_path.name}.")
    labels = np.searchsorted(classes, np.concatenate([train_labels, test_labels]))
    inputs = np.concatenate([train_series, test_series])[:, None, :]
    n_train = len(train_labels)
    return ArrayDataset(
        name=f"ucr_{name.lower()}",
        items="sequences",
        inputs=inputs,
        labels=labels.astype(np.int64),
        splits={"train": np.arange(n_train), "test": np.arange(n_train, len(labels))},
        num_classes=classes.size,
        description=f"UCR {name}: {classes.size} classes, length {inputs.shape[-1]}",
    )
