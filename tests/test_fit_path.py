"""The one fit path (harness.cells.execute_unit): a unit of one or many cells, built, fitted, described."""

import numpy as np

from harness import Estimate, EstimatorSpec, hookimpl, report, runner, suite
from harness.executors import InlineExecutor

SUITE = """
[suite]
name = "fragile"
seeds = [0, 1, 2]
[budget]
samples = [100]
[[estimators]]
name = "fragile_group"
[[tasks]]
name = "gaussian"
params = { dim = 1, mi = 0.5 }
"""


class FragileGroup:
    """Groups with its own kind, but a group of them always runs out of memory; alone it is fine."""

    target = "mi"

    def __init__(self, params):
        self.params = params

    def group_key(self):
        return "fragile"

    def fit_estimate_group(self, members, budget, device):
        raise MemoryError("out of memory for the whole group")

    def fit_estimate(self, x, y, budget, device, seed):
        return Estimate(value=float(np.corrcoef(x[:, 0], y[:, 0])[0, 1]))


class _Plugin:
    @hookimpl
    def register_estimators(self, register):
        register(EstimatorSpec(name="fragile_group", summary="groups, then fails as a group", build=FragileGroup))


def test_a_group_that_fails_as_a_whole_reruns_its_cells_alone_and_the_report_says_so(mi_registry, store, tmp_path):
    mi_registry.register(_Plugin(), name="fragile-test")
    path = tmp_path / "fragile.toml"
    path.write_text(SUITE)
    summary = runner.run(suite.load(path), store, executor=InlineExecutor(), show_progress=False)
    assert summary.statuses == {"ok": 3}
    cells = store.cells("fragile")
    reasons = set(cells["diagnostics"].map(lambda d: d["group_fallback"]))
    assert reasons == {"its group of 3 failed as a whole, so it ran alone; the group's error: MemoryError: out of "
                       "memory for the whole group (at test_fit_path.py:34)"}
    alone = {seed: FragileGroup(None).fit_estimate(*_samples(seed), None, "cpu", seed).value for seed in range(3)}
    assert dict(zip(cells["seed"], cells["estimate"], strict=True)) == alone
    page = (report.build(store, "fragile", tmp_path / "reports") / "index.md").read_text()
    assert "## Cells that ran alone after their group failed as a whole" in page


def _samples(seed):
    from harness import registry

    task = registry.get("task", "gaussian").instantiate({"dim": 1, "mi": 0.5})
    return task.sample(100, np.random.default_rng(seed))
