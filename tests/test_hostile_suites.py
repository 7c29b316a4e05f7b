"""Hostile and careless suites: nothing escapes its folder, nothing crashes, nothing hangs, nothing is echoed whole.

The named cases are in tests/data/bad_suites (test_bad_suites.py); here, what a corpus file cannot show:
where files land, how long a refusal takes, how much of a huge value comes back, and random suite files.
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_in_process import run_main
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness import Budget, registry
from harness.errors import UserError
from harness.suite import load

TINY = """
[suite]
name = "{name}"
[budget]
samples = [40]
[[estimators]]
name = "gaussian_cca"
[[tasks]]
name = "gaussian"
params = {{ dim = 2 }}
"""


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A work folder inside tmp_path beside an empty sibling, the current folder for the test."""
    (tmp_path / "work").mkdir()
    (tmp_path / "sibling").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    yield tmp_path / "work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sibling", "work"], "something was written beside work/"
    assert not any((tmp_path / "sibling").iterdir()), "something was written into the sibling folder"


@pytest.mark.parametrize("name", ["..", ".", "../../x", "/abs", "a/b", "a\\u0007b", ""])
def test_a_suite_whose_name_leaves_its_folder_is_refused_naming_the_field(work, monkeypatch, capsys, name):
    (work / "s.toml").write_text(TINY.format(name=name))
    code, out = run_main(monkeypatch, capsys, "run", "s.toml", "--store", "r.sqlite")
    assert code == 2 and "[suite] name" in " ".join(out.split()) and "Traceback" not in out
    assert not (work / "r.sqlite").exists()


@pytest.mark.parametrize("run", ["../../x", "..", "/abs", str(Path("/tmp") / "elsewhere"), "a/b", "x\ty"])
def test_a_run_name_that_leaves_its_folder_is_refused(work, monkeypatch, capsys, run):
    (work / "s.toml").write_text(TINY.format(name="tiny"))
    code, out = run_main(monkeypatch, capsys, "run", "s.toml", "--store", "r.sqlite", "--run", run)
    assert code == 2 and "--run" in out and "Traceback" not in out
    assert not (work / "r.sqlite").exists() and not Path("/abs").exists()


def test_a_suite_that_runs_writes_only_inside_the_work_folder(work, monkeypatch, capsys):
    (work / "s.toml").write_text(TINY.format(name="tiny"))
    code, out = run_main(monkeypatch, capsys, "run", "s.toml", "--store", "r.sqlite", "--run", "first")
    assert code == 0, out
    assert (work / "reports" / "tiny" / "first" / "index.html").is_file()


def test_a_foreign_store_naming_a_suite_outside_the_reports_folder_writes_no_report(work, monkeypatch, capsys):
    (work / "s.toml").write_text(TINY.format(name="tiny"))
    assert run_main(monkeypatch, capsys, "run", "s.toml", "--store", "r.sqlite", "--no-report")[0] == 0
    with sqlite3.connect(work / "r.sqlite") as db:  # as a store written by someone else would read
        db.execute("UPDATE runs SET suite = '../../..'")
        db.execute("UPDATE cells SET suite = '../../..'")
    code, out = run_main(monkeypatch, capsys, "report", "tiny", "--store", "r.sqlite", "--reports-dir", "reports")
    assert code == 2 and "would lie outside 'reports'" in " ".join(out.split()) and "Traceback" not in out


def test_reports_dir_that_is_a_file_is_refused(work, monkeypatch, capsys):
    (work / "s.toml").write_text(TINY.format(name="tiny"))
    (work / "taken").write_text("")
    code, out = run_main(monkeypatch, capsys, "run", "s.toml", "--store", "r.sqlite", "--reports-dir", "taken")
    assert code == 2 and "--reports-dir" in out and "is a file" in out


def grid_of(seeds: int, sizes: int, estimators: int, mis: int, dims: int) -> str:
    values = ", ".join(str(i / 100) for i in range(mis))
    return (f"[suite]\nname = \"huge\"\nseeds = {list(range(seeds))}\n[budget]\nsamples = {list(range(2, 2 + sizes))}\n"
            + "".join(f"[[estimators]]\nname = \"ksg\"\nparams = {{ k = {k} }}\n" for k in range(1, 1 + estimators))
            + f"[[tasks]]\nname = \"gaussian\"\ngrid = {{ mi = [{values}], dim = {list(range(1, 1 + dims))} }}\n")


def test_a_grid_of_two_billion_cells_is_refused_in_under_a_second_showing_its_axes(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text(grid_of(seeds=1000, sizes=100, estimators=20, mis=100, dims=10))
    registry.specs("estimator")  # the registry's one-off loading is not the refusal's time
    started = time.perf_counter()
    with pytest.raises(UserError) as caught:
        load(path)
    assert time.perf_counter() - started < 1.0
    message = str(caught.value)
    assert "20 estimator variants x 1000 task variants x 100 sizes x 1000 seeds = 2000000000 cells" in message
    assert "--max-cells" in message


def test_max_cells_is_the_limit_the_cli_applies(work, monkeypatch, capsys):
    (work / "s.toml").write_text(grid_of(seeds=2, sizes=1, estimators=1, mis=2, dims=1))
    code, out = run_main(monkeypatch, capsys, "run", "s.toml", "--store", "r.sqlite", "--max-cells", "3")
    text = " ".join(out.split())
    assert code == 2 and "1 estimator variant x 2 task variants x 1 size x 2 seeds = 4 cells" in text
    assert "limit of 3" in text and not (work / "r.sqlite").exists()


TEN_MB = "a" * 10_000_000


@pytest.mark.parametrize("where", ["suite name", "task name", "run name", "label"])
def test_a_ten_megabyte_value_is_echoed_as_its_start_and_its_length(work, monkeypatch, capsys, where):
    name, task, run, label = ("tiny", "gaussian", "first", "x")
    if where == "suite name":
        name = TEN_MB
    elif where == "task name":
        task = TEN_MB
    elif where == "label":
        label = TEN_MB
    else:
        run = TEN_MB
    (work / "s.toml").write_text(TINY.format(name=name).replace('"gaussian"', f'"{task}"\nlabel = "{label}"'))
    code, out = run_main(monkeypatch, capsys, "run", "s.toml", "--store", "r.sqlite", "--run", run)
    assert code == 2 and "Traceback" not in out and len(out) < 2000, out[:3000]
    assert "10000000 characters" in " ".join(out.split()) or where == "task name"


# Random suite files: every one is refused in a sentence, or runs; nothing is written outside work/.

NAMES = ["gaussian_cca", "ksg", "histogram", "infonce", "nwj", "gaussian", "half_cube", "raw", "ucr_trace",
         "gausian", "..", "a/b", "/abs", "", "x" * 200, "\x00", "é"]
KEYS = ["suite", "budget", "estimators", "tasks", "encoders", "datasets", "name", "params", "grid", "label",
        "seeds", "samples", "steps", "batch_size", "epochs", "device", "preprocess", "description", "base", "dim",
        "mi", "k", "hidden", "lr", "critic", "bins", "seed", "sweep"]
scalars = st.one_of(
    st.integers(min_value=-3, max_value=60), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 10**40]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.sampled_from(NAMES), st.text(max_size=12),
)


def calls(depth: int = 3) -> st.SearchStrategy[str]:
    """`name`, `name(arg, key=value)` and calls inside calls, some well-formed and some not."""
    leaf = st.sampled_from(NAMES + ["1 + 2", "__import__('os')", "gaussian(**{'dim': 3})", "gaussian(3, dim=4)",
                                    "gaussian(mi=1e999)", "gaussian(dim='3')", "gaussian(dim=True)"])
    if depth == 0:
        return leaf
    argument = st.one_of(calls(depth - 1), scalars.map(repr))
    call = st.tuples(st.sampled_from(NAMES[:9]), st.lists(st.tuples(st.sampled_from(["", "dim", "mi", "base", "k"]),
                                                                     argument), max_size=3))
    return st.one_of(leaf, call.map(lambda c: f"{c[0]}({', '.join(f'{k}={v}' if k else v for k, v in c[1])})"))


values = st.recursive(st.one_of(scalars, calls()), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4)),
    max_leaves=12)
entry = st.fixed_dictionaries({"name": st.one_of(calls(), scalars)}, optional={
    "params": st.dictionaries(st.sampled_from(KEYS), values, max_size=3),
    "grid": st.dictionaries(st.sampled_from(KEYS), st.lists(values, max_size=3), max_size=2),
    "label": st.one_of(st.sampled_from(["same", "other"]), scalars),
})
suite_files = st.fixed_dictionaries({}, optional={
    "suite": st.fixed_dictionaries({"name": st.one_of(st.sampled_from(["ok", "ok.2", *NAMES]), scalars)}, optional={
        "seeds": st.lists(scalars, max_size=3), "device": st.sampled_from(["cpu", "cpu:7", "cuda:9", "tpu", 3]),
        "preprocess": st.sampled_from(["none", "standardize", "other"]), "seed": values}),
    "budget": st.fixed_dictionaries({}, optional={
        "samples": st.lists(st.integers(min_value=-2, max_value=60) | scalars, max_size=3),
        "steps": st.integers(min_value=-1, max_value=5) | scalars, "batch_size": st.integers(-1, 8) | scalars,
        "epochs": st.integers(0, 2), "step": values}),
    "estimators": st.lists(entry, max_size=3), "tasks": st.lists(entry, max_size=3),
    "encoders": st.lists(entry, max_size=2), "datasets": st.lists(entry, max_size=2), "sweep": values,
})


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")) if not math.isfinite(value) \
            else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"


def toml_file(document: dict) -> str:
    lines = []
    for key, value in document.items():
        if isinstance(value, dict):
            lines += [f"[{key}]", *(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())]
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for item in value:
                lines += [f"[[{key}]]", *(f"{json.dumps(k)} = {toml_value(v)}" for k, v in item.items())]
        else:
            lines.insert(0, f"{json.dumps(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


# Mostly well-formed suites, tiny enough to run, so that some of the random files pass validation too.
plausible_files = st.fixed_dictionaries({
    "suite": st.fixed_dictionaries({"name": st.sampled_from(["ok", "ok.2", *NAMES]),
                                    "seeds": st.lists(st.integers(0, 3), min_size=1, max_size=2, unique=True)},
                                   optional={"device": st.sampled_from(["cpu", "cpu:7", "cuda:9"])}),
    "budget": st.fixed_dictionaries({"samples": st.lists(st.integers(2, 60), min_size=1, max_size=2, unique=True),
                                     "steps": st.integers(1, 5), "batch_size": st.integers(2, 8)}),
    "estimators": st.lists(st.fixed_dictionaries(
        {"name": st.sampled_from(["gaussian_cca", "ksg", "histogram", "infonce", "nwj"])},
        optional={"label": st.sampled_from(["a", "b"]), "params": st.dictionaries(
            st.sampled_from(["hidden", "k", "lr", "bins"]), st.integers(1, 8) | st.floats(0.001, 0.1), max_size=1)}),
        min_size=1, max_size=2),
    "tasks": st.lists(st.fixed_dictionaries(
        {"name": st.sampled_from(["gaussian", "gaussian(dim=2)", "half_cube(gaussian(dim=2, mi=0.5))",
                                  "gaussian(2, 0.5)", "half_cube(gaussian(dmi=3))", "gaussian(dim=2, dim=3)"])},
        optional={"grid": st.dictionaries(st.sampled_from(["mi", "dim"]),
                                          st.lists(st.integers(1, 3), min_size=1, max_size=2, unique=True),
                                          max_size=1)}), min_size=1, max_size=2),
}, optional={"sweep": values})


def cheap_to_run(suite) -> bool:
    """Small enough to run in well under a second: few cells, few samples and steps, small dimensions."""
    def small(value, bound: int) -> bool:
        if isinstance(value, dict):
            return all(small(item, bound) for item in value.values())
        if isinstance(value, list):
            return all(small(item, bound) for item in value)
        return not isinstance(value, int | float) or abs(value) <= bound
    return len(suite.cells) <= 8 and all(
        cell.study == "estimation" and cell.n <= 60 and cell.budget.steps <= 5 and small(cell.data_params, 8)
        and small(cell.method_params, 1024) for cell in suite.cells)


EXAMPLES = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(document=suite_files | plausible_files, through_the_cli=st.integers(0, 5))
def test_a_random_suite_file_is_refused_in_one_sentence_or_runs(work, monkeypatch, capsys, document,
                                                                through_the_cli):
    path = work / "random.toml"
    path.write_text(toml_file(document))
    try:
        suite = load(path)
    except UserError as error:
        lines = str(error).splitlines()  # a sentence for each problem found, then perhaps the valid params
        assert "random.toml" in lines[0] and len(lines) <= 12 and max(map(len, lines)) < 1000, lines
        suite = None
    if suite is not None and (not cheap_to_run(suite) or through_the_cli > 1):
        event("valid, checked by load alone")
        return
    if suite is None and through_the_cli:
        event("refused by load")
        return  # most refusals are checked by load alone; one in six also through the CLI
    event("through the CLI: refused" if suite is None else "through the CLI: ran")
    store = work / f"r{next(EXAMPLES)}.sqlite"
    code, out = run_main(monkeypatch, capsys, "run", str(path), "--store", str(store), "--run", "random")
    assert code in (0, 2) and "Traceback" not in out, out
    assert (code == 0) == (suite is not None), out
    if code == 2:
        assert "error:" in out and len(out) < 12_000 and not store.exists(), out
    assert not any((work.parent / "sibling").iterdir())


# Memory: a critic, batch or valuing batch past this machine's free memory is refused before any cell runs.

WIDE_CRITIC = """
[suite]
name = "wide"
[budget]
samples = [1000]
steps = 10
[[estimators]]
name = "infonce"
params = {{ hidden = {hidden}, layers = {layers} }}
[[tasks]]
name = "gaussian"
label = "2-D"
"""


def test_a_critic_past_free_memory_is_refused_at_load_in_one_sentence(work, monkeypatch, capsys):
    (work / "s.toml").write_text(WIDE_CRITIC.format(hidden=65536, layers=64))
    with pytest.raises(UserError) as caught:
        load(work / "s.toml")
    message = str(caught.value)
    assert "\n" not in message and message.count("; use a smaller hidden, fewer layers") == 1, message
    assert "('infonce(hidden=65536, layers=64)')" in message and "('2-D')" in message, message
    assert "GiB beside the data" in message and "GiB free" in message, message
    code, out = run_main(monkeypatch, capsys, "run", "s.toml", "--store", "r.sqlite")
    assert code == 2 and "Traceback" not in out and not (work / "r.sqlite").exists()


def test_a_critic_that_fits_in_memory_still_loads(work):
    (work / "s.toml").write_text(WIDE_CRITIC.format(hidden=256, layers=2))
    assert len(load(work / "s.toml").cells) == 1


# One fit in a fresh process: the rise of its peak resident memory over what it held before, in bytes.
MEASURE_ONE_FIT = """
import json, sys
import numpy as np
import torch
from harness import Budget
from plugins.estimators.variational import CriticParams
from plugins.estimators.variational_estimator import build_infonce

def kib(key):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key))

torch.set_num_threads(1)
params, budget = CriticParams(**json.loads(sys.argv[1])), Budget(**json.loads(sys.argv[2]))
n, dim = int(sys.argv[3]), int(sys.argv[4])
x = np.random.default_rng(0).standard_normal((n, dim))
y = x + np.random.default_rng(1).standard_normal((n, dim))
# a small fit first, so the kernels' one-off set-up is not counted
build_infonce(params.model_copy(update={"hidden": 4})).fit_estimate(x[:64], y[:64], Budget(steps=2, batch_size=16),
                                                                    "cpu", 0)
before = kib("VmRSS:")
build_infonce(params).fit_estimate(x, y, budget, "cpu", 0)
print((kib("VmHWM:") - before) * 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
def test_the_critic_memory_estimate_is_within_a_factor_of_two_of_a_measured_fit():
    # A mid-size critic whose weights and activations both count; data small, so that the rise is the model's.
    params, budget, n, dim = {"hidden": 1024, "layers": 4}, {"steps": 3, "batch_size": 512}, 1024, 64
    result = subprocess.run([sys.executable, "-c", MEASURE_ONE_FIT, json.dumps(params), json.dumps(budget), str(n),
                             str(dim)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    measured = int(result.stdout.split()[-1])
    estimator = registry.get("estimator", "infonce").instantiate(params)
    assert estimator.budget_problem(n, Budget(**budget), dim, dim, free_bytes=2 * measured) is None
    assert estimator.budget_problem(n, Budget(**budget), dim, dim, free_bytes=measured // 2) is not None
