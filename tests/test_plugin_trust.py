"""Plugins a stranger can trust: a broken plugin is isolated and named, a misspelled hook is caught,
seeds and threads belong to the harness, and the contract's edges (required parameters, literal
summaries, did-you-mean, a declined target) behave as the plugin guide says."""

import os
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import harness
from harness import EstimatorSpec, TaskSpec, hookimpl, registry
from harness.errors import UserError

WIDE = {"COLUMNS": "400"}  # rich tables wrap to the terminal; keep each row on one line


def mi_harness(*args, env=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **WIDE, **(env or {})}, timeout=300)


def warnings_in(result):
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


def write_suite(path, estimator, task, seeds="[0]", samples="[200]", extra=""):
    path.write_text(textwrap.dedent(f"""
        [suite]
        name = "{path.stem}"
        seeds = {seeds}
        [budget]
        samples = {samples}
        steps = 20
        batch_size = 32
        [[estimators]]
        name = {estimator!r}
        {extra}
        [[tasks]]
        name = {task!r}
    """))
    return str(path)


# -- isolation ----------------------------------------------------------------------------------


def test_every_command_goes_on_without_broken_plugins_and_names_each_once(broken_plugins):
    result = mi_harness("list", "estimators")
    assert result.returncode == 0, result.stderr
    assert "fine_zero" in result.stdout and "infonce" in result.stdout
    lines = warnings_in(result)
    assert len(lines) == 3, result.stderr
    at_import = next(line for line in lines if "'broken_import'" in line)
    assert "entry point broken_import = mi_harness_broken.at_import" in at_import
    assert "ModuleNotFoundError: No module named 'a_dependency_that_is_not_installed'" in at_import
    assert "MI_HARNESS_LOAD_PLUGINS=" in at_import and "or uninstall it" in at_import
    assert "Traceback" not in result.stderr + result.stdout


def test_list_plugins_shows_each_broken_plugin_with_its_error(broken_plugins):
    result = mi_harness("list", "plugins")
    assert result.returncode == 0
    row = next(line for line in result.stdout.splitlines() if "broken_registration" in line)
    assert "broken: RuntimeError: the plugin's configuration file is missing" in row
    fine = next(line for line in result.stdout.splitlines() if " fine " in line)
    assert "0.0.1" in fine and "broken" not in fine


def test_a_suite_runs_beside_broken_plugins(broken_plugins, tmp_path):
    suite = write_suite(tmp_path / "beside.toml", "fine_zero", "gaussian")
    result = mi_harness("run", suite, "--store", str(tmp_path / "r.sqlite"), "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 ok" in result.stdout


def test_a_suite_needing_a_broken_plugins_name_fails_with_that_reason(broken_plugins, tmp_path):
    suite = write_suite(tmp_path / "needs.toml", "half_registered", "gaussian")
    result = mi_harness("run", suite, "--store", str(tmp_path / "r.sqlite"), "--no-report")
    assert result.returncode == 2
    assert ("unknown estimator 'half_registered'" in result.stdout and "It comes from plugin 'broken_registration', "
            "which is broken: RuntimeError: the plugin's configuration file is missing" in result.stdout)
    assert "Traceback" not in result.stdout + result.stderr


def test_a_misspelled_hook_is_an_error_naming_the_plugin_the_name_and_the_closest_hook(broken_plugins):
    lines = warnings_in(mi_harness("list", "estimators"))
    misspelled = next(line for line in lines if "'misspelled'" in line)
    assert "'register_estimator' is not a hook (did you mean 'register_estimators'?)" in misspelled


def test_load_plugins_naming_what_is_not_installed_warns_with_what_is(broken_plugins):
    result = mi_harness("list", "estimators", env={"MI_HARNESS_LOAD_PLUGINS": "fine, fien"})
    assert result.returncode == 0 and "fine_zero" in result.stdout
    (line,) = warnings_in(result)
    assert "MI_HARNESS_LOAD_PLUGINS names 'fien', which is not installed. Did you mean 'fine'? Installed plugins:" in line
    assert "broken_import" in line.split("Installed plugins:")[1]
    builtin = warnings_in(mi_harness("list", "tasks", env={"MI_HARNESS_LOAD_PLUGINS": "plugins.tasks"}))
    assert builtin == ["warning: MI_HARNESS_LOAD_PLUGINS names the built-in plugin 'plugins.tasks'; built-ins always "
                       "load, so name only installed plugins there."]


def test_the_advice_to_leave_a_broken_plugin_out_names_only_the_working_plugins(broken_plugins):
    lines = warnings_in(mi_harness("list", "estimators"))
    assert all(line.endswith("set MI_HARNESS_LOAD_PLUGINS='fine' or uninstall it.") for line in lines), lines


def test_a_suite_from_an_excluded_plugin_and_the_kit_on_an_excluded_plugin_are_told_why(broken_plugins, tmp_path):
    ran = mi_harness("run", "fine_suite", "--store", str(tmp_path / "r.sqlite"), "--no-report")
    assert ran.returncode == 0 and "1 ok" in ran.stdout, ran.stdout + ran.stderr
    result = mi_harness("run", "fine_suite", env={"MI_HARNESS_LOAD_PLUGINS": ""})
    assert result.returncode == 2 and "unknown suite 'fine_suite'" in result.stdout
    assert "It comes from the installed plugin 'fine', which MI_HARNESS_LOAD_PLUGINS leaves out" in result.stdout
    with pytest.raises(UserError, match="It is installed, but MI_HARNESS_LOAD_PLUGINS leaves it out"):
        _excluded_registry().plugin_specs("fine")


def _excluded_registry():
    """A fresh registry module, loaded in this process with MI_HARNESS_LOAD_PLUGINS empty."""
    import importlib

    previous = os.environ.get("MI_HARNESS_LOAD_PLUGINS")
    os.environ["MI_HARNESS_LOAD_PLUGINS"] = ""
    try:
        fresh = importlib.util.module_from_spec(importlib.util.find_spec("harness.registry"))
        fresh.__spec__.loader.exec_module(fresh)
        fresh.plugin_manager()
    finally:
        if previous is None:
            del os.environ["MI_HARNESS_LOAD_PLUGINS"]
        else:
            os.environ["MI_HARNESS_LOAD_PLUGINS"] = previous
    return fresh


def test_a_suite_naming_an_excluded_plugins_estimator_is_told_so(broken_plugins, tmp_path):
    suite = write_suite(tmp_path / "excluded.toml", "fine_zero", "gaussian")
    result = mi_harness("run", suite, "--store", str(tmp_path / "r.sqlite"), "--no-report", env={"MI_HARNESS_LOAD_PLUGINS": ""})
    assert result.returncode == 2
    assert ("It comes from the installed plugin 'fine', which MI_HARNESS_LOAD_PLUGINS leaves out; add 'fine' to "
            "MI_HARNESS_LOAD_PLUGINS or unset it.") in result.stdout


class _MisspelledTask:
    @hookimpl
    def register_task(self, register):
        register(TaskSpec(name="never", summary="", build=lambda p: None))


class _Unmarked:
    def register_estimators(self, register):
        register(EstimatorSpec(name="never", summary="", build=lambda p: None))


class _RaisesWhileRegistering:
    @hookimpl
    def register_estimators(self, register):
        register(EstimatorSpec(name="first_of_two", summary="", build=lambda p: None))
        raise KeyError("second")


@pytest.mark.parametrize(("plugin", "message"), [
    (_MisspelledTask(), r"'register_task' is not a hook \(did you mean 'register_tasks'\?\)"),
    (_Unmarked(), r"register_estimators is not decorated with @harness.hookimpl"),
    (_RaisesWhileRegistering(), r"cannot be registered: KeyError: 'second' \(at test_plugin_trust.py:\d+\)"),
])
def test_a_plugin_registered_at_run_time_that_is_broken_is_an_error_and_leaves_nothing(plugin, message):
    with pytest.raises(UserError, match=message):
        registry.register(plugin, name="broken-test")
    assert "broken-test" not in {row["name"] for row in registry.plugins()}
    assert "first_of_two" not in registry.specs("estimator")
    assert not any("broken-test" in line for line in registry.problems())


def test_a_plugin_file_that_fails_to_load_is_one_sentence(tmp_path):
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("def register_estimators(register:\n")
    result = mi_harness("--plugin-file", str(bad), "list", "estimators")
    assert result.returncode == 2
    assert f"plugin file {bad} fails to load: SyntaxError:" in result.stdout
    assert "(at bad_plugin.py:1)" in result.stdout and "Traceback" not in result.stdout + result.stderr


# -- seeds and threads --------------------------------------------------------------------------


@pytest.fixture
def global_state(plugin_file):
    path = plugin_file("global_state")
    registry.load_plugin_file(path)
    yield path
    registry.unregister(path)


def estimates(db):
    return dict(sqlite3.connect(db).execute("SELECT key, estimate FROM cells").fetchall())


def test_same_seed_same_bits_from_the_global_generators_inline_and_in_a_pool(plugin_file, tmp_path):
    suite = write_suite(tmp_path / "draws.toml", "global_draws", "only_mi", seeds="[0, 1, 2]")
    runs = {}
    for name, jobs in [("inline", "1"), ("again", "1"), ("pool", "2")]:
        db = tmp_path / f"{name}.sqlite"
        result = mi_harness("--plugin-file", plugin_file("global_state"), "run", suite, "--store", str(db),
                            "--jobs", jobs, "--no-report")
        assert result.returncode == 0, result.stdout + result.stderr
        runs[name] = estimates(db)
    assert runs["inline"] == runs["again"] == runs["pool"]
    assert len(set(runs["inline"].values())) == 3  # three seeds, three different draws


def test_harness_estimate_seeds_the_fit_and_runs_it_on_one_thread_unless_told(global_state):
    x = np.random.default_rng(0).standard_normal((100, 1))
    y = x + np.random.default_rng(1).standard_normal((100, 1))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first, second = (harness.estimate("global_draws", x, y, seed=7) for _ in range(2))
        assert first.value == second.value != harness.estimate("global_draws", x, y, seed=8).value
        assert first.diagnostics["threads"] == 1 and torch.get_num_threads() == 2
        assert harness.estimate("global_draws", x, y, threads=2).diagnostics["threads"] == 2
    finally:
        torch.set_num_threads(previous)


# -- the contract's edges -----------------------------------------------------------------------


def test_a_task_that_declines_a_target_fails_those_cells_and_the_suite_goes_on(plugin_file, tmp_path):
    suite = tmp_path / "declined.toml"
    write_suite(suite, "fgan", "only_mi", seeds="[0, 1]", extra="params = { divergence = 'tv', hidden = 8 }")
    suite.write_text(suite.read_text() + '[[estimators]]\nname = "gaussian_cca"\n')
    db = tmp_path / "declined.sqlite"
    result = mi_harness("--plugin-file", plugin_file("global_state"), "run", str(suite), "--store", str(db),
                        "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = sqlite3.connect(db).execute("SELECT method, status, error FROM cells").fetchall()
    assert sorted((method, status) for method, status, _ in rows) == [
        ("fgan", "failed"), ("fgan", "failed"), ("gaussian_cca", "ok"), ("gaussian_cca", "ok")]
    assert all("ValueError: this task knows only its MI, not 'tv'" in error for _, status, error in rows
               if status == "failed")


def test_listing_shows_required_parameters_choices_and_summaries_literally(plugin_file):
    result = mi_harness("--plugin-file", plugin_file("global_state"), "list", "estimators")
    assert result.returncode == 0
    row = next(line for line in result.stdout.splitlines() if "needs_k" in line)
    assert "k=required" in row and "[k] nearest [bold]neighbours[/bold], literally" in row
    assert "PydanticUndefined" not in result.stdout
    assert "divergence='kl' (tv | kl | reverse_kl | pearson" in registry.get("estimator", "fgan").params.describe_fields()


def test_parameter_typos_through_the_python_api_get_the_clis_did_you_mean():
    x = np.random.default_rng(0).standard_normal((200, 2))
    with pytest.raises(UserError, match=r"harness.estimate\('infonce'\).*unknown key 'hiden'. Did you mean "
                                        r"'hidden'\?") as caught:
        harness.estimate("infonce", x, x, hiden=64)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(UserError, match="unknown estimator 'infonse'. Did you mean 'infonce'"):
        harness.estimate("infonse", x, x)


def test_a_typo_of_one_of_harness_estimates_own_keywords_is_told_its_name():
    x = np.random.default_rng(0).standard_normal((200, 2))
    with pytest.raises(UserError, match=r"unknown keyword 'stpes'. Did you mean 'steps'\?"):
        harness.estimate("ksg", x, x + 1e-3 * x[::-1], stpes=10)
