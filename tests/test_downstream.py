"""Downstream evaluation (harness.downstream): the protocols, and the three accuracies one training run gives
when its encoder keeps checkpoints -- fixed in advance, chosen by inner CV, and chosen on the test items."""

from dataclasses import dataclass, field

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from harness import DatasetSpec, Embeddings, EncoderSpec, Params, hookimpl, metrics, report, runner, suite
from harness.downstream import C_GRID, PROTOCOLS, evaluate
from harness.errors import UserError
from harness.executors import InlineExecutor


@dataclass
class Labelled:
    labels: np.ndarray
    splits: dict = field(default_factory=dict)
    evaluation: str = "logistic_fixed_split"


def informative(labels: np.ndarray, rng: np.random.Generator, strength: float = 4.0) -> np.ndarray:
    return rng.normal(size=(len(labels), 8)) + strength * np.eye(8)[labels]


def noise(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(len(labels), 8))


@pytest.fixture
def fixed_split():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    return Labelled(labels, {"train": np.arange(100), "test": np.arange(100, 200)}), rng


def test_logistic_repeats_separates_separable_classes_and_not_random_ones():
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 3, 400)
    features = rng.normal(size=(400, 16)) + 4.0 * np.eye(16)[labels]
    splits = {"train": np.arange(100), "test": np.arange(100, 400)}
    result = PROTOCOLS["logistic_repeats"](features, labels, splits, 0, repeats=10)
    # Bayes accuracy is about 99.5%; 100 Adam steps from a Xavier start get within a few points.
    assert result.test.mean() > 90.0 and result.spread >= 0.0
    chance = PROTOCOLS["logistic_repeats"](rng.normal(size=(400, 16)), rng.permutation(labels), splits, 0, repeats=10)
    # 300 test items: 4 binomial standard errors around 1/3 is about +-11 points.
    assert abs(chance.test.mean() - 100 / 3) < 11.0


def test_logistic_repeats_trains_each_repeat_as_its_own_logistic_regression():
    """The repeats share one product and one fused Adam, yet each is the regression DGI's code trains alone:
    nn.Linear from its own Xavier start, torch's plain Adam on the mean cross-entropy, argmax on the test split."""
    import torch

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 300)
    features = (rng.normal(size=(300, 12)) + 1.2 * np.eye(12)[labels]).astype(np.float32)
    splits = {"train": np.arange(60), "test": np.arange(60, 300)}
    got = PROTOCOLS["logistic_repeats"](features, labels, splits, 7, repeats=2)
    bound = (6.0 / (12 + 3)) ** 0.5
    starts = (torch.rand(2, 12, 3, generator=torch.Generator().manual_seed(7)) * 2 - 1) * bound
    x, y = torch.tensor(features), torch.tensor(labels)
    accuracies = []
    for start in starts:
        model = torch.nn.Linear(12, 3)
        with torch.no_grad():
            model.weight.copy_(start.T)
            model.bias.zero_()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01, foreach=False)
        for _ in range(100):
            loss = torch.nn.functional.cross_entropy(model(x[:60]), y[:60])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracies.append(100.0 * (model(x[60:]).argmax(1) == y[60:]).float().mean().item())
    assert accuracies[0] != accuracies[1]  # the starts differ, so the repeats do
    np.testing.assert_allclose(got.test, [np.mean(accuracies)], atol=1e-4)
    np.testing.assert_allclose(got.spread, np.std(accuracies), atol=1e-4)


@pytest.mark.parametrize("scale", [False, True])
def test_the_svm_protocol_makes_the_fits_of_a_grid_search_over_svc(scale):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 150)
    features = rng.normal(size=(150, 6)) * [1, 2, 3, 1, 1, 5] + 1.5 * np.eye(6)[labels]
    scores = PROTOCOLS["svm_kfold" if scale else "svm_kfold_unscaled"](features, labels, {}, 4)
    expected, inner_best = [], []
    for train, test in StratifiedKFold(n_splits=10, shuffle=True, random_state=4).split(features, labels):
        steps = [StandardScaler(), SVC()] if scale else [SVC()]
        search = GridSearchCV(make_pipeline(*steps), {"svc__C": list(C_GRID)},
                              cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=4))
        search.fit(features[train], labels[train])
        expected.append(100.0 * search.score(features[test], labels[test]))
        inner_best.append(100.0 * search.best_score_)
    np.testing.assert_allclose(scores.test, expected, atol=1e-9)
    np.testing.assert_allclose(scores.select, inner_best, atol=1e-9)
    assert scores.spread == pytest.approx(np.std(expected))


def test_one_informative_checkpoint_is_found_by_inner_cv_without_the_test_labels(fixed_split):
    data, rng = fixed_split
    embeddings = Embeddings(features=noise(data.labels, rng),
                            checkpoints={5: noise(data.labels, rng), 10: informative(data.labels, rng),
                                         15: noise(data.labels, rng)})
    found, chosen = evaluate(data, embeddings, 0, "best_on_test")
    # 100 test items: the noise features sit at 50% within 3 binomial standard errors (15 points)
    assert abs(found["accuracy_fixed"] - 50.0) < 15.0 and found["accuracy"] == found["accuracy_fixed"]
    assert found["accuracy_inner_cv"] > 95.0 and chosen["inner_cv_checkpoints"] == [10]
    assert found["accuracy_best_on_test"] == found["accuracy_inner_cv"] and chosen["best_on_test_checkpoint"] == 10
    assert found["accuracy_as_published"] == found["accuracy_best_on_test"]
    assert evaluate(data, embeddings, 0, "fixed")[0]["accuracy_as_published"] == found["accuracy_fixed"]
    assert evaluate(data, embeddings, 0, "best_on_validation")[0]["accuracy_as_published"] == found["accuracy_inner_cv"]


def test_choosing_on_the_test_items_is_optimistic_and_inner_cv_is_not(fixed_split):
    data, rng = fixed_split
    embeddings = Embeddings(features=noise(data.labels, rng),
                            checkpoints={epoch: noise(data.labels, rng) for epoch in range(1, 31)})
    found, _ = evaluate(data, embeddings, 0, "best_on_test")
    # Every checkpoint is noise: each reads 50% +- 5 points on 100 test items. The best of 31 is 2 standard
    # errors up on average and under 1 up with probability 0.84^31 < 0.5%; the inner-CV choice cannot see the
    # test labels, so it stays at chance (3 standard errors).
    assert found["accuracy_best_on_test"] > 55.0
    assert abs(found["accuracy_inner_cv"] - 50.0) < 15.0
    every = [evaluate(data, Embeddings(features=f), 0)[0]["accuracy"] for f in embeddings.checkpoints.values()]
    assert found["accuracy_best_on_test"] == max(every + [found["accuracy_fixed"]])


def test_each_fold_chooses_its_own_checkpoint_in_the_kfold_protocol():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 120)
    data = Labelled(labels, evaluation="svm_kfold_unscaled")
    embeddings = Embeddings(features=noise(labels, rng),
                            checkpoints={1: noise(labels, rng), 2: informative(labels, rng)})
    found, chosen = evaluate(data, embeddings, 0, "best_on_test")
    assert chosen["inner_cv_checkpoints"] == [2] * 10
    assert found["accuracy_inner_cv"] > 90.0 and abs(found["accuracy_fixed"] - 50.0) < 15.0


def test_equal_checkpoints_choose_the_features_fixed_in_advance(fixed_split):
    data, rng = fixed_split
    same = informative(data.labels, rng, strength=1.0)
    found, chosen = evaluate(data, Embeddings(features=same, checkpoints={1: same.copy(), 2: same.copy()}), 0)
    assert chosen["inner_cv_checkpoints"] == ["final"]
    assert found["accuracy_inner_cv"] == found["accuracy_fixed"] == found["accuracy_best_on_test"]


def test_the_validation_split_chooses_where_the_dataset_has_one():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 300)
    splits = {"train": np.arange(100), "val": np.arange(100, 200), "test": np.arange(200, 300)}
    embeddings = Embeddings(features=noise(labels, rng), checkpoints={1: informative(labels, rng)})
    found, chosen = evaluate(Labelled(labels, splits, "logistic_repeats"), embeddings, 0, "best_on_validation")
    assert chosen["inner_cv_checkpoints"] == [1] and found["accuracy_as_published"] == found["accuracy_inner_cv"] > 90
    del splits["val"]  # no labelled items outside the training split: nothing to choose with
    found, chosen = evaluate(Labelled(labels, splits, "logistic_repeats"), embeddings, 0, "best_on_validation")
    assert "accuracy_inner_cv" not in found and "accuracy_as_published" not in found
    assert found["accuracy_best_on_test"] > 90 and "inner_cv_checkpoints" not in chosen


def test_without_checkpoints_only_the_fixed_accuracy_is_reported(fixed_split):
    data, rng = fixed_split
    found, chosen = evaluate(data, Embeddings(features=informative(data.labels, rng)), 0, "best_on_test")
    assert set(found) == {"accuracy", "accuracy_std", "accuracy_fixed"} and chosen == {}


def test_malformed_checkpoints_are_a_user_error_naming_what_is_wrong(fixed_split):
    data, rng = fixed_split
    features = noise(data.labels, rng)
    with pytest.raises(UserError, match=r"checkpoint 3 features have shape \(10, 8\); give one row per dataset "
                                        r"item, shape \(200, dimensions\)"):
        evaluate(data, Embeddings(features=features, checkpoints={3: features[:10]}), 0)
    with pytest.raises(UserError, match="key them by the epoch or step"):
        evaluate(data, Embeddings(features=features, checkpoints={"last": features}), 0)


class CheckpointedProbe:
    """An encoder whose epoch-2 checkpoint is the only informative one; `baseline` is its untrained twin."""

    def __init__(self, params):
        self.params = params

    def fit(self, dataset, budget, device, seed):
        rng = np.random.default_rng(seed)
        if self.params.baseline:
            return Embeddings(features=noise(dataset.labels, rng), untrained_baseline=True)
        return Embeddings(features=noise(dataset.labels, rng), checkpoints={
            1: noise(dataset.labels, rng), 2: informative(dataset.labels, rng)})


class ProbeParams(Params):
    baseline: bool = False


class _ProbePlugin:
    @hookimpl
    def register_encoders(self, register):
        register(EncoderSpec(name="checkpointed_probe", summary="", params=ProbeParams, build=CheckpointedProbe,
                             published={"probe_items": (97.0, 1.0)}, published_selection="best_on_test"))

    @hookimpl
    def register_datasets(self, register):
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 2, 200)
        data = Labelled(labels, {"train": np.arange(100), "test": np.arange(100, 200)})
        register(DatasetSpec(name="probe_items", summary="", build=lambda params: data))


SUITE = """
[suite]
name = "selection"
seeds = [0, 1]
[[encoders]]
name = "checkpointed_probe"
[[encoders]]
name = "checkpointed_probe"
label = "probe (random init)"
params = { baseline = true }
[[datasets]]
name = "probe_items"
"""


def test_the_three_accuracies_reach_the_store_the_export_and_the_report(mi_registry, store, tmp_path):
    mi_registry.register(_ProbePlugin(), name="selection-probe")
    path = tmp_path / "selection.toml"
    path.write_text(SUITE)
    runner.run(suite.load(path), store, executor=InlineExecutor(), show_progress=False)
    cells = store.cells("selection")
    trained = cells[cells["method_label"] != "probe (random init)"]
    assert trained["diagnostics"].map(lambda d: d["inner_cv_checkpoints"]).tolist() == [[2], [2]]
    exported = metrics.export_frame(cells)
    for column in ("metric_accuracy_fixed", "metric_accuracy_as_published", "metric_accuracy_inner_cv"):
        assert column in exported
    assert exported["metric_accuracy_as_published"].notna().sum() == 2  # the baselines keep no checkpoints
    summary = metrics.summarise(cells).set_index("method")
    row, baseline = summary.loc["checkpointed_probe"], summary.loc["probe (random init)"]
    assert row["inner_cv"] > 95 and row["as_published"] == row["best_on_test"]
    assert row["optimism"] == pytest.approx(row["as_published"] - row["mean"])
    assert row["untrained"] == baseline["mean"] and np.isnan(baseline["untrained"])
    page = (report.build(store, "selection", tmp_path / "reports") / "index.md").read_text()
    header = next(line for line in page.splitlines() if line.startswith("| method") and "as_published" in line)
    for column in ("paper", "fixed", "as_published", "optimism", "inner_cv", "best_on_test", "untrained"):
        assert f" {column} " in header
