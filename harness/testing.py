"""A pytest plugin for plugin authors: registry isolation, a temporary store, and contract checks.

pytest loads it in every environment where mi-harness is installed (the `pytest11` entry point),
so importing it stays cheap (no torch) and it does nothing to a test that does not use it.
Turn the checks on for your plugin with one class:

    from harness.testing import PluginContract

    class TestMyPluginContract(PluginContract):
        plugin = "my_plugin"  # the entry-point name of your plugin

docs/plugin-testing.md says what each check asserts and how to tune it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pytest
from pydantic import ValidationError

from harness import registry
from harness.api import (
    Budget,
    DensityRatioTask,
    Estimate,
    Estimator,
    GroupedEstimator,
    Params,
    PluginKind,
    Spec,
    SuiteSpec,
    Task,
)
from harness.errors import UserError, describe_validation_error
from harness.worker import seed_everything

if TYPE_CHECKING:
    import pandas as pd

    from harness.store import Store

SPEC_FIXTURES: dict[str, PluginKind] = {
    "estimator_spec": "estimator", "task_spec": "task", "encoder_spec": "encoder", "dataset_spec": "dataset",
    "suite_spec": "suite",
}


def gaussian_pairs(n: int, dim: int, rho: float, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """n pairs of standard Gaussians correlated rho in each of dim dimensions, and their MI in nats."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, dim))
    return x, y, -0.5 * dim * math.log(1 - rho**2)


class PluginContract:
    """Subclass it as `Test...`, set `plugin`, and every check runs on every spec of that plugin.

    Override the class attributes below to fit your plugin; add your own test methods taking
    `spec`, `estimator_spec`, `task_spec`, `encoder_spec`, `dataset_spec` or `suite_spec` and
    they are parametrized over the plugin's specs too.
    """

    plugin: ClassVar[str] = ""  # the plugin's registry name: its entry-point name when installed
    spec_params: ClassVar[dict[str, dict[str, Any]]] = {}  # spec name -> params to build it with
    steps: ClassVar[int] = 200
    batch_size: ClassVar[int] = 64
    device: ClassVar[str] = "cpu"
    samples: ClassVar[int] = 1000  # rows handed to each estimator and drawn from each task
    dim: ClassVar[int] = 2
    rho: ClassVar[float] = 0.5
    seed: ClassVar[int] = 0
    mc_samples: ClassVar[int] = 20_000  # fresh joint samples behind the ground-truth check
    mc_stderrs: ClassVar[float] = 5.0
    group_seeds: ClassVar[tuple[int, ...]] = (0, 1, 2)
    group_rtol: ClassVar[float] = 1e-5
    group_atol: ClassVar[float] = 1e-6

    # -- every spec ----------------------------------------------------------------------
    def test_summary_is_one_line(self, spec: Spec | SuiteSpec) -> None:
        assert spec.summary.strip() and "\n" not in spec.summary.strip(), (
            f"{spec.kind} {spec.name!r} needs a one-line summary (`mi-harness list` shows it); got {spec.summary!r}.")

    def test_cites_its_source(self, spec: Spec | SuiteSpec) -> None:
        if isinstance(spec, SuiteSpec):
            pytest.skip("a suite file implements no paper of its own (its methods cite theirs)")
        assert spec.cite.strip(), f"{spec.kind} {spec.name!r} needs cite= (the paper or page it implements)."

    def test_params_forbid_unknown_keys(self, spec: Spec | SuiteSpec) -> None:
        if isinstance(spec, SuiteSpec):
            pytest.skip("a suite file has no params")
        assert isinstance(spec.params, type) and issubclass(spec.params, Params), (
            f"{spec.kind} {spec.name!r}: params must be a subclass of harness.Params, got {spec.params!r}.")
        assert spec.params.model_config.get("extra") == "forbid", (
            f"{spec.kind} {spec.name!r}: {spec.params.__name__} must forbid unknown keys (a typo in a suite "
            f"would be ignored); keep harness.Params' model_config.")

    def test_defaults_validate_and_survive_the_store(self, spec: Spec | SuiteSpec) -> None:
        if isinstance(spec, SuiteSpec):
            pytest.skip("a suite file has no params")
        required = {name for name, info in spec.params.model_fields.items() if info.is_required()}
        given = {name: value for name, value in self.spec_params.get(spec.name, {}).items() if name in required}
        if required - set(given):
            pytest.skip(f"{spec.kind} {spec.name!r} requires {sorted(required - set(given))}: give them in "
                        f"spec_params[{spec.name!r}]")
        params = spec.params(**given)  # every default, whatever spec_params says about the other fields
        # pydantic does not validate defaults; validating the dumped values does
        kept = params.model_dump(mode="json")
        text = json.dumps(kept)
        try:
            rebuilt = spec.params.model_validate(json.loads(text))
        except ValidationError as error:
            pytest.fail(f"{spec.kind} {spec.name!r}: a default of {spec.params.__name__} does not validate: "
                        f"{describe_validation_error(spec.params.__name__, error)}", pytrace=False)
        assert rebuilt == params, (
            f"{spec.kind} {spec.name!r}: params rebuilt from the store's JSON {text} differ from {params!r}.")

    # -- estimators ----------------------------------------------------------------------
    def test_estimate_is_finite_on_a_gaussian(self, estimator_spec: Spec) -> None:
        instance = estimator_spec.instantiate(self.build_params(estimator_spec))
        assert isinstance(instance, Estimator), (
            f"estimator {estimator_spec.name!r} builds {type(instance).__name__}, which lacks "
            f"target or fit_estimate (harness.api.Estimator).")
        x, y, _ = gaussian_pairs(self.samples, self.dim, self.rho, self.seed)
        estimate = self.fit(estimator_spec, x, y, self.seed)
        assert isinstance(estimate, Estimate), (
            f"estimator {estimator_spec.name!r} returned {type(estimate).__name__}, not a harness.Estimate.")
        assert math.isfinite(estimate.value), (
            f"estimator {estimator_spec.name!r} returned {estimate.value} on a {self.dim}-d Gaussian (rho "
            f"{self.rho}, n {self.samples}, {self.steps} steps of {self.batch_size}).")

    def test_estimate_is_reproducible_by_seed(self, estimator_spec: Spec) -> None:
        x, y, _ = gaussian_pairs(self.samples, self.dim, self.rho, self.seed)
        first, second = (self.fit(estimator_spec, x, y, self.seed).value for _ in range(2))
        assert float(first).hex() == float(second).hex(), (
            f"estimator {estimator_spec.name!r} gave {first!r} and then {second!r} with seed {self.seed}: "
            f"draw randomness from the seed it is given (np.random.default_rng(seed), torch.Generator).")

    def test_grouped_fit_matches_fits_alone(self, estimator_spec: Spec) -> None:
        params = self.build_params(estimator_spec)
        instances = [estimator_spec.instantiate(params) for _ in self.group_seeds]
        if not isinstance(instances[0], GroupedEstimator) or instances[0].group_key() is None:
            pytest.skip(f"estimator {estimator_spec.name!r} does not fit in groups "
                        "(no fit_estimate_group, or group_key() is None)")
        members = []
        for instance, seed in zip(instances, self.group_seeds, strict=True):
            x, y, _ = gaussian_pairs(self.samples, self.dim, self.rho, 100 + seed)
            # float32 for both paths, as the runner hands a group: the values then agree exactly
            members.append((instance, x.astype(np.float32), y.astype(np.float32), seed))
        seed_everything(self.group_seeds[0])  # as the runner does before a group
        grouped = instances[0].fit_estimate_group(members, Budget(steps=self.steps, batch_size=self.batch_size),
                                                  self.device)
        for (_, x, y, seed), together in zip(members, grouped, strict=True):
            if isinstance(together, BaseException):
                raise together
            alone = self.fit(estimator_spec, x, y, seed).value
            assert np.isclose(together.value, alone, rtol=self.group_rtol, atol=self.group_atol), (
                f"estimator {estimator_spec.name!r}, seed {seed}: {together.value!r} in a group of "
                f"{len(members)} but {alone!r} alone (rtol {self.group_rtol}, atol {self.group_atol}).")

    # -- tasks ---------------------------------------------------------------------------
    def test_task_samples_are_reproducible_by_seed(self, task_spec: Spec) -> None:
        task = task_spec.instantiate(self.build_params(task_spec))
        first, second = (task.sample(self.samples, np.random.default_rng(self.seed)) for _ in range(2))
        assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True)), (
            f"task {task_spec.name!r}: two draws with np.random.default_rng({self.seed}) differ; draw only "
            "from the generator sample() is given.")

    def test_task_samples_have_the_declared_shapes(self, task_spec: Spec) -> None:
        task = task_spec.instantiate(self.build_params(task_spec))
        assert isinstance(task, Task), (
            f"task {task_spec.name!r} builds {type(task).__name__}, which lacks kind, dim_x, dim_y, sample "
            "or ground_truth (harness.api.Task).")
        x, y = task.sample(self.samples, np.random.default_rng(self.seed))
        shapes = (np.shape(x), np.shape(y))
        assert shapes == ((self.samples, task.dim_x), (self.samples, task.dim_y)), (
            f"task {task_spec.name!r}: sample({self.samples}) gave shapes {shapes}, but dim_x = {task.dim_x} "
            f"and dim_y = {task.dim_y}.")
        assert np.isfinite(x).all() and np.isfinite(y).all(), f"task {task_spec.name!r} samples non-finite values."

    def test_ground_truth_matches_the_log_density_ratio(self, task_spec: Spec) -> None:
        task = task_spec.instantiate(self.build_params(task_spec))
        if task.measures != "mi" or not isinstance(task, DensityRatioTask):
            pytest.skip(f"task {task_spec.name!r} is not an MI task with a log_density_ratio")
        rng = np.random.default_rng(self.seed + 1)  # not the task's own Monte-Carlo stream
        try:
            values = np.asarray(task.log_density_ratio(*task.sample(self.mc_samples, rng)), dtype=np.float64)
        except NotImplementedError as missing:
            pytest.skip(f"task {task_spec.name!r}: {missing}")
        assert values.shape == (self.mc_samples,), (
            f"task {task_spec.name!r}: log_density_ratio gave shape {values.shape} for {self.mc_samples} pairs; "
            f"give one value per pair, shape ({self.mc_samples},).")
        truth = task.ground_truth("mi")
        mean, stderr = values.mean(), values.std(ddof=1) / math.sqrt(len(values))
        # the difference of two independent estimates; the floor covers a constant ratio
        tolerance = self.mc_stderrs * math.hypot(stderr, truth.stderr) + 1e-9 * max(1.0, abs(truth.value))
        assert abs(mean - truth.value) <= tolerance, (
            f"task {task_spec.name!r}: ground_truth('mi') is {truth.value:.6g} (stderr {truth.stderr:.2g}) but "
            f"the mean log density ratio over {self.mc_samples} fresh joint samples is {mean:.6g} (stderr "
            f"{stderr:.2g}); allowed {tolerance:.2g} ({self.mc_stderrs:g} combined standard errors).")

    # -- suites -------------------------------------------------------------------------
    def test_suite_file_loads(self, suite_spec: SuiteSpec) -> None:
        from harness import suite

        loaded = suite.load(suite_spec.path, device="cpu")  # validates every name and parameter in it
        assert loaded.name == suite_spec.name, (
            f"suite {suite_spec.name!r}: its file {suite_spec.path} says [suite] name = {loaded.name!r}.")

    # -- helpers an overriding author may use --------------------------------------------
    def build_params(self, spec: Spec) -> Params:
        """The spec's params from `spec_params` and its defaults; skips when a required one is missing."""
        given = self.spec_params.get(spec.name, {})
        missing = [name for name, info in spec.params.model_fields.items() if info.is_required() and name not in given]
        if missing:
            pytest.skip(f"{spec.kind} {spec.name!r} requires {missing}: give them in spec_params[{spec.name!r}]")
        return spec.params(**given)

    def fit(self, spec: Spec, x: np.ndarray, y: np.ndarray, seed: int) -> Estimate:
        """One fit through harness.estimate, the public path that seeds and sets threads before it."""
        from harness import estimate

        return estimate(spec.name, x, y, seed=seed, steps=self.steps, batch_size=self.batch_size,
                        device=self.device, **self.spec_params.get(spec.name, {}))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    contract = metafunc.cls
    if contract is None or not issubclass(contract, PluginContract):
        return
    specs = _plugin_specs(contract)
    for fixture, kind in SPEC_FIXTURES.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, _params(list(specs[kind].values()), contract.plugin, kind))
    if "spec" in metafunc.fixturenames:
        every = [spec for table in specs.values() for spec in table.values()]
        metafunc.parametrize("spec", _params(every, contract.plugin, "spec", qualified=True))


def _plugin_specs(contract: type[PluginContract]) -> dict[PluginKind, dict[str, Spec]]:
    if not contract.plugin:
        pytest.fail(f"{contract.__name__}: set plugin = '<name>', your plugin's entry-point name.", pytrace=False)
    try:
        return registry.plugin_specs(contract.plugin)
    except UserError as error:
        pytest.fail(f"{contract.__name__}.plugin: {error} An installed plugin is named by its entry point in "
                    "the mi_harness group; `mi-harness list plugins` shows them.", pytrace=False)


def _params(specs: list[Spec], plugin: str, kind: str, qualified: bool = False) -> list[Any]:
    """One parameter per spec, its id the spec's name (kind-name where kinds mix)."""
    if not specs:
        return [pytest.param(None, id=f"no-{kind}",
                             marks=pytest.mark.skip(reason=f"plugin {plugin!r} registers no {kind}"))]
    return [pytest.param(spec, id=f"{spec.kind}-{spec.name}" if qualified else spec.name) for spec in specs]


# -- fixtures --------------------------------------------------------------------------------
class PluginRegistry:
    """What `mi_registry` gives a test: plugin objects registered now and unregistered at teardown."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def register(self, plugin: object, name: str | None = None) -> dict[PluginKind, dict[str, Spec]]:
        """Register `plugin` (a module, class instance or namespace of hookimpls); returns its specs by kind."""
        registry.register(plugin, name=name)
        registered = registry.plugin_manager().get_name(plugin)
        assert registered is not None
        self.names.append(registered)
        return registry.plugin_specs(registered)

    def unregister_all(self) -> None:
        while self.names:
            name = self.names.pop()
            if registry.plugin_manager().has_plugin(name):
                registry.unregister(name)


@pytest.fixture
def mi_registry() -> Iterator[PluginRegistry]:
    """Register plugin objects for one test: `mi_registry.register(obj, name="x")`."""
    plugins = PluginRegistry()
    yield plugins
    plugins.unregister_all()


@pytest.fixture
def mi_store(tmp_path: Path) -> Iterator[Store]:
    """An empty results store in the test's tmp_path, closed afterwards."""
    from harness.store import Store

    store = Store(tmp_path / "results.sqlite")
    yield store
    store.close()


@pytest.fixture
def run_suite(tmp_path: Path, mi_store: Store) -> Callable[..., pd.DataFrame]:
    """Run a suite given as TOML text into `mi_store`, in this process; returns the summary table.

    In this process so that plugins registered through `mi_registry` are there; the cells are
    then `mi_store.cells(run)`, run being the suite's name unless given.
    """
    from harness import metrics, runner, suite
    from harness.executors import InlineExecutor

    def run(text: str, run: str | None = None) -> pd.DataFrame:
        path = tmp_path / "suite.toml"
        path.write_text(text)
        summary = runner.run(suite.load(path), mi_store, run, InlineExecutor(), show_progress=False)
        return metrics.summarise(mi_store.cells(summary.run))

    return run
