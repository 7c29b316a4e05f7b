"""harness.testing: the contract checks pass on a sound plugin, fail on a broken one, and its fixtures work."""

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness import Estimate, EstimatorSpec, GroundTruth, TaskSpec, hookimpl, registry

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parent / "example_plugin" / "mi_harness_example.py"
# the example plugin's code, imported from its file: the specs below reuse it under their own names
_source = importlib.util.spec_from_file_location("mi_harness_example_source", EXAMPLE)
example = importlib.util.module_from_spec(_source)
_source.loader.exec_module(example)

class Unseeded(example.GaussianCopulaMI):
    """Ignores the seed it is given: every fit draws fresh entropy."""

    def fit_estimate(self, x, y, budget, device, seed):
        return Estimate(value=super().fit_estimate(x, y, budget, device, seed).value
                        + float(np.random.default_rng().normal()))


class Grouped(example.GaussianCopulaMI):
    """Fits a group member by member: trivially what each fit alone gives."""

    def group_key(self):
        return "copula"

    def fit_estimate_group(self, members, budget, device):
        return [estimator.fit_estimate(x, y, budget, device, seed) for estimator, x, y, seed in members]


class MisGrouped(Grouped):
    """Fits every member of a group on the first member's data."""

    def fit_estimate_group(self, members, budget, device):
        _, x, y, _ = members[0]
        return [estimator.fit_estimate(x, y, budget, device, seed) for estimator, _, _, seed in members]


class WrongTruth(example.ExampleGaussian):
    """Samples and log density ratio right, ground truth 0.1 nats too high."""

    def ground_truth(self, target="mi"):
        return GroundTruth(super().ground_truth(target).value + 0.1)


COPULA = EstimatorSpec(name="kit_copula", summary="Gaussian-copula MI", params=example.CopulaParams,
                       build=example.GaussianCopulaMI, cite="test")
GROUPED = replace(COPULA, name="kit_grouped", build=Grouped)
GAUSSIAN = TaskSpec(name="kit_gaussian", summary="correlated Gaussian", params=example.GaussianParams,
                    build=example.ExampleGaussian, cite="test")


class Plugin:
    """A plugin object registering the given specs from its hooks."""

    def __init__(self, *specs):
        self.specs = specs

    @hookimpl
    def register_estimators(self, register):
        for spec in self.specs:
            if spec.kind == "estimator":
                register(spec)

    @hookimpl
    def register_tasks(self, register):
        for spec in self.specs:
            if spec.kind == "task":
                register(spec)


@pytest.fixture(scope="module", autouse=True)
def harness_loaded():
    """Load the registry and the runner before pytester's snapshot, which drops modules first imported after it."""
    for module in ("harness.grouping", "harness.metrics", "harness.runner", "harness.store"):
        importlib.import_module(module)
    registry.all_specs()


def contract_outcomes(pytester: pytest.Pytester, plugin: str) -> dict[str, set[str]]:
    """Run a PluginContract for `plugin` in a throwaway test file, in this process; test ids by outcome."""
    pytester.makepyfile(test_contract=f"""
        from harness.testing import PluginContract

        class TestContract(PluginContract):
            plugin = {plugin!r}
    """)
    passed, skipped, failed = pytester.inline_run("-p", "no:cacheprovider").listoutcomes()
    return {outcome: {report.nodeid.rsplit("::", 1)[-1] for report in reports}
            for outcome, reports in (("passed", passed), ("skipped", skipped), ("failed", failed))}


def test_the_example_plugin_passes_its_own_contract_tests(example_plugin):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_contract.py"],
                            cwd=example_plugin, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    # 4 checks x 2 specs, 3 estimator and 3 task checks; skipped: the copula estimator does not fit in
    # groups, and the plugin ships no suite
    assert re.search(r"\b13 passed, 2 skipped\b", result.stdout), result.stdout


def test_a_sound_plugin_passes_every_check(pytester, mi_registry):
    mi_registry.register(Plugin(COPULA, GROUPED, GAUSSIAN), name="kit_sound")
    outcomes = contract_outcomes(pytester, "kit_sound")
    assert outcomes["failed"] == set()
    assert outcomes["skipped"] == {"test_grouped_fit_matches_fits_alone[kit_copula]", "test_suite_file_loads[no-suite]"}
    assert "test_grouped_fit_matches_fits_alone[kit_grouped]" in outcomes["passed"]
    assert len(outcomes["passed"]) == 4 * 3 + 3 * 2 - 1 + 3


@pytest.mark.parametrize("broken, failing", [
    (replace(COPULA, name="kit_unseeded", build=Unseeded), "test_estimate_is_reproducible_by_seed[kit_unseeded]"),
    (replace(GAUSSIAN, name="kit_wrong_truth", build=WrongTruth),
     "test_ground_truth_matches_the_log_density_ratio[kit_wrong_truth]"),
    (replace(COPULA, name="kit_unsummarised", summary=""), "test_summary_is_one_line[estimator-kit_unsummarised]"),
    (replace(COPULA, name="kit_misgrouped", build=MisGrouped), "test_grouped_fit_matches_fits_alone[kit_misgrouped]"),
], ids=["unseeded-estimator", "wrong-ground-truth", "empty-summary", "group-unlike-alone"])
def test_a_broken_plugin_fails_exactly_its_check(pytester, mi_registry, broken, failing):
    mi_registry.register(Plugin(broken), name="kit_broken")
    outcomes = contract_outcomes(pytester, "kit_broken")
    assert outcomes["failed"] == {failing}
    assert outcomes["passed"]


def test_an_unknown_plugin_fails_naming_the_registered_ones(pytester):
    pytester.makepyfile(test_contract="""
        from harness.testing import PluginContract

        class TestContract(PluginContract):
            plugin = "no_such_plugin"
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*unknown plugin 'no_such_plugin'*plugins.tasks*"])


def test_mi_registry_unregisters_at_teardown(pytester):
    pytester.makepyfile(test_probe="""
        from harness import EstimatorSpec, hookimpl, registry

        class Probe:
            @hookimpl
            def register_estimators(self, register):
                register(EstimatorSpec(name="kit_probe", summary="probe", build=lambda params: None))

        def test_registers_for_the_test(mi_registry):
            assert list(mi_registry.register(Probe(), name="kit_probe")["estimator"]) == ["kit_probe"]
            assert registry.get("estimator", "kit_probe").summary == "probe"
    """)
    pytester.inline_run("-p", "no:cacheprovider").assertoutcome(passed=1)
    assert not registry.plugin_manager().has_plugin("kit_probe")
    assert "kit_probe" not in registry.specs("estimator")


def test_run_suite_runs_registered_plugins_into_mi_store(mi_registry, mi_store, run_suite, tmp_path):
    mi_registry.register(Plugin(COPULA, GAUSSIAN), name="kit_sound")
    summary = run_suite(textwrap.dedent("""
        [suite]
        name = "kit"
        seeds = [0, 1]
        [budget]
        samples = [2000]
        [[estimators]]
        name = "kit_copula"
        [[tasks]]
        name = "kit_gaussian"
    """))
    assert mi_store.path == tmp_path / "results.sqlite"
    assert list(mi_store.cells("kit")["status"]) == ["ok", "ok"]
    (row,) = summary.to_dict("records")
    assert (row["method"], row["data"], row["seeds"]) == ("kit_copula", "kit_gaussian", 2)
    assert abs(row["mean"] - row["true"]) < 0.1  # the copula estimator is exact for Gaussians up to sampling error
