"""Digits, digit sequences and UCR loaders; DIM, CPC and raw encoders on tiny budgets."""

import os

import numpy as np
import pytest

os.environ.setdefault("MI_HARNESS_DATA_ROOT", "/work/shared/data")

from harness import Budget, registry  # noqa: E402
from harness.errors import UserError  # noqa: E402
from plugins.datasets.arrays import ArrayDataset  # noqa: E402
from plugins.datasets.digits import load_digits_dataset, make_digit_sequences  # noqa: E402
from plugins.encoders.raw import raw_features  # noqa: E402


def dataset(name, **params):
    return registry.get("dataset", name).instantiate(params)


def subset(data: ArrayDataset, n_train: int, n_test: int) -> ArrayDataset:
    """The first n_train train items and n_test test items, as a smaller dataset of the same kind."""
    train, test = data.splits["train"][:n_train], data.splits["test"][:n_test]
    keep = np.concatenate([train, test])
    return ArrayDataset(data.name, data.items, data.inputs[keep], data.labels[keep],
                        {"train": np.arange(n_train), "test": np.arange(n_train, n_train + n_test)})


def test_digits_are_1797_images_of_10_classes_with_a_stratified_split():
    data = dataset("digits")
    assert data.items == "images" and data.evaluation == "logistic_fixed_split"
    assert data.inputs.shape == (1797, 1, 8, 8) and data.inputs.dtype == np.float32
    assert data.inputs.min() == 0.0 and data.inputs.max() == 1.0
    train, test = data.splits["train"], data.splits["test"]
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == 1797
    per_class = np.bincount(data.labels[test], minlength=10) / np.bincount(data.labels, minlength=10)
    assert np.all(np.abs(per_class - 0.25) < 0.01)
    assert np.array_equal(test, dataset("digits").splits["test"])  # fixed, not redrawn


@pytest.mark.parametrize(("name", "classes", "length", "n_train", "n_test"), [
    ("ucr_trace", 4, 275, 100, 100), ("ucr_gunpoint", 2, 150, 50, 150), ("ucr_coffee", 2, 286, 28, 28),
])
def test_ucr_series_have_the_archive_shapes_classes_and_split(name, classes, length, n_train, n_test):
    data = dataset(name)
    assert data.items == "sequences"
    assert data.inputs.shape == (n_train + n_test, 1, length) and data.inputs.dtype == np.float32
    assert sorted(np.unique(data.labels)) == list(range(classes))
    assert np.array_equal(data.splits["train"], np.arange(n_train))
    assert np.array_equal(data.splits["test"], np.arange(n_train, n_train + n_test))
    # The archive z-normalises every series.
    assert np.allclose(data.inputs.mean(-1), 0.0, atol=1e-3)


def test_digit_sequences_count_up_mod_10_and_keep_test_images_out_of_training():
    digits = load_digits_dataset()
    data = make_digit_sequences(length=5, n_train=200, n_test=100, seed=3)
    assert data.inputs.shape == (300, 5, 1, 8, 8)
    class_of = {digits.inputs[i].tobytes(): digits.labels[i] for i in range(len(digits.labels))}
    split_of = {digits.inputs[i].tobytes(): "train" for i in digits.splits["train"]}
    split_of.update({digits.inputs[i].tobytes(): "test" for i in digits.splits["test"]})
    for item in range(300):
        classes = [class_of[image.tobytes()] for image in data.inputs[item]]
        assert classes == [(data.labels[item] - 4 + t) % 10 for t in range(5)]
        expected = "train" if item in data.splits["train"] else "test"
        assert {split_of[image.tobytes()] for image in data.inputs[item]} == {expected}


def write_ucr(root, name, train_text, test_text=None):
    folder = root / "ucr" / name
    folder.mkdir(parents=True)
    (folder / f"{name}_TRAIN.tsv").write_text(train_text)
    if test_text is not None:
        (folder / f"{name}_TEST.tsv").write_text(test_text)


def test_missing_ucr_file_is_a_user_error_naming_it(tmp_path, monkeypatch):
    write_ucr(tmp_path, "Trace", "1\t0.1\t0.2\n2\t0.3\t0.4\n")
    monkeypatch.setenv("MI_HARNESS_DATA_ROOT", str(tmp_path))
    with pytest.raises(UserError, match="Trace_TEST.tsv"):
        dataset("ucr_trace")


@pytest.mark.parametrize(("bad_line", "message"), [
    ("1\t0.5\tabc", "must be a number"),
    ("2\t0.5", "length 1"),
    ("1.5\t0.5\t0.6", "not an integer"),
    ("1\tnan\t0.6", "non-finite"),
])
def test_malformed_ucr_line_is_a_user_error_naming_file_and_line(tmp_path, monkeypatch, bad_line, message):
    good = "1\t0.1\t0.2\n2\t0.3\t0.4\n"
    write_ucr(tmp_path, "GunPoint", good, good + bad_line + "\n")
    monkeypatch.setenv("MI_HARNESS_DATA_ROOT", str(tmp_path))
    with pytest.raises(UserError, match=rf"GunPoint_TEST\.tsv, line 3: .*{message}"):
        dataset("ucr_gunpoint")


def test_ucr_test_label_unseen_in_training_is_a_user_error(tmp_path, monkeypatch):
    write_ucr(tmp_path, "Coffee", "0\t0.1\t0.2\n1\t0.3\t0.4\n", "0\t0.1\t0.2\n7\t0.3\t0.4\n")
    monkeypatch.setenv("MI_HARNESS_DATA_ROOT", str(tmp_path))
    with pytest.raises(UserError, match=r"label\(s\) \[7\] never occur"):
        dataset("ucr_coffee")


@pytest.fixture(scope="module")
def small_digits():
    return subset(load_digits_dataset(), 256, 64)


def fit(name, data, budget, seed=0, **params):
    return registry.get("encoder", name).instantiate(params).fit(data, budget, "cpu", seed)


@pytest.mark.parametrize("objective", ["js", "dv", "infonce"])
def test_dim_training_lowers_its_loss_and_raises_its_mi_estimate(small_digits, objective):
    embeddings = fit("dim", small_digits, Budget(epochs=8, batch_size=64), objective=objective)
    history = embeddings.diagnostics["history"]
    values = [v for _, v in embeddings.trajectory]
    assert len(values) == 9 and abs(values[0]) < 0.1  # an untrained critic scores every pair alike
    assert values[-1] > values[0] + 0.3, values
    assert history["loss"][-1] < history["loss"][0] - 0.1, history["loss"]
    assert embeddings.features.shape == (320, 16)
    if objective == "infonce":
        assert max(values) <= np.log(64) + 1e-5


def test_cpc_on_digit_sequences_learns_to_predict_ahead():
    data = make_digit_sequences(length=6, n_train=256, n_test=32, seed=0)
    embeddings = fit("cpc", data, Budget(steps=16, batch_size=64), steps_ahead=2)
    values = [v for _, v in embeddings.trajectory]
    assert values[-1] > values[0] + 0.5, values
    assert values[-1] <= np.log(64) + 1e-5  # InfoNCE with 64 items per batch is capped at log 64
    assert embeddings.features.shape == (288, 192)


def test_cpc_on_ucr_windows_learns_to_predict_ahead():
    data = dataset("ucr_trace")
    embeddings = fit("cpc", data, Budget(steps=16, batch_size=50), window=25)
    values = [v for _, v in embeddings.trajectory]
    assert values[-1] > values[0] + 0.3, values
    assert embeddings.features.shape == (200, 192)


@pytest.mark.parametrize("name", ["dim", "cpc"])
def test_random_init_is_reproducible_by_seed_and_differs_across_seeds(name):
    data = subset(load_digits_dataset(), 64, 16) if name == "dim" else dataset("ucr_gunpoint")
    budget = Budget(epochs=1, batch_size=32)
    first = fit(name, data, budget, seed=5, random_init=True).features
    assert np.array_equal(first, fit(name, data, budget, seed=5, random_init=True).features)
    assert not np.allclose(first, fit(name, data, budget, seed=6, random_init=True).features)
    assert np.all(np.isfinite(first)) and len(first) == len(data.labels)


def test_training_changes_the_encoder_and_random_init_does_not_train(small_digits):
    budget = Budget(epochs=1, batch_size=64)
    trained = fit("dim", small_digits, budget, seed=1)
    untrained = fit("dim", small_digits, budget, seed=1, random_init=True)
    assert untrained.diagnostics["epochs"] == 0 and len(untrained.trajectory) == 1
    assert not np.allclose(trained.features, untrained.features)


@pytest.mark.parametrize(("name", "budget", "every", "kept"), [
    ("dim", Budget(epochs=3, batch_size=64), 1, [1, 2]),
    ("cpc", Budget(steps=6, batch_size=32), 2, [2, 4]),
])
def test_checkpoints_are_kept_without_changing_the_training(small_digits, name, budget, every, kept):
    data = small_digits if name == "dim" else make_digit_sequences(n_train=64, n_test=16)
    with_checkpoints = fit(name, data, budget, checkpoint_every=every)
    without = fit(name, data, budget, checkpoint_every=0)
    assert sorted(with_checkpoints.checkpoints) == kept and without.checkpoints == {}
    np.testing.assert_array_equal(with_checkpoints.features, without.features)


def test_raw_baseline_serves_every_kind_of_item():
    images = load_digits_dataset()
    assert np.array_equal(raw_features(images), images.inputs.reshape(1797, 64))
    node_features = np.arange(12, dtype=np.float32).reshape(4, 3)

    class Graph:
        items, features = "graph", node_features

    class Graphs:
        items = "graphs"
        graphs = [(node_features[:2], np.array([[0], [1]])), (node_features[2:], np.array([[0], [1]]))]

    assert np.array_equal(raw_features(Graph()), node_features)
    assert np.array_equal(raw_features(Graphs()), np.array([[3, 5, 7], [15, 17, 19]], dtype=np.float32))


def test_encoders_refuse_inputs_they_cannot_read_with_a_user_error(small_digits):
    with pytest.raises(UserError, match="CPC reads sequences"):
        fit("cpc", small_digits, Budget(epochs=1))
    with pytest.raises(UserError, match="DIM reads images"):
        fit("dim", make_digit_sequences(n_train=20, n_test=10), Budget(epochs=1))
    with pytest.raises(UserError, match="needs more than 3 steps"):
        fit("cpc", dataset("ucr_gunpoint"), Budget(epochs=1), window=50)


@pytest.mark.parametrize("name", ["dim", "cpc", "raw"])
def test_every_encoder_offers_a_random_init_baseline_switch(name):
    spec = registry.get("encoder", name)
    assert spec.params().random_init is False and spec.cite or name == "raw"


@pytest.mark.parametrize("suite", ["representation_images", "representation_sequences"])
def test_representation_suites_expand_to_cells_of_registered_plugins(suite):
    from harness.suite import load

    loaded = load(suite)
    assert loaded.cells and {cell.study for cell in loaded.cells} == {"representation"}
    assert any(cell.method_params.get("random_init") for cell in loaded.cells)
    assert any(cell.method == "raw" for cell in loaded.cells)
