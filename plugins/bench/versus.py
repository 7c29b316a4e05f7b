"""`mi-harness bench --versus-reference`: ours against the reference package on the Beyond-Normal core tasks.

One run, rerunnable by anyone: the 41 target tasks of `suites/bmi_core.toml` (not the additive-noise
pair), each sampled as `tests/benchmarks/tune_defaults.py` samples them (`task.sample(n,
np.random.default_rng(seed))`, each dimension standardised, then float32), and the same arrays go to

- ours: `harness.estimate("infonce", x, y, seed=seed)` at its defaults (the tuned general-purpose
  configuration), one torch thread, in this process;
- the reference, when the Python interpreter of another environment with `benchmark-mi` (import name
  `bmi`) installed is given: `plugins/bench/reference_worker.py` under that interpreter runs
  `bmi.estimators.InfoNCEEstimator` at its package defaults, one JAX/XLA thread, on the samples written
  to a temporary .npz, and answers one JSON line per task.

Each side's time is the CPU seconds (time.process_time) and the wall seconds of the estimate alone; the
summary gives each side's mean absolute error against the true MI and the reference / ours ratios of
error and of time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from plugins.bench import reference_worker

WORKER = Path(__file__).with_name("reference_worker.py")
REFERENCE_ENV = "MI_HARNESS_REFERENCE_PYTHON"
DEFAULT_SAMPLES = 5000
# Sampling seeds no committed report holds: the suites' reports use 0-4 (bmi_core 0-2) and the defaults
# were tuned on 5 and 6 (tests/benchmarks/tune_defaults.py).
DEFAULT_SEED = 7
REFERENCE_BATCH = 256  # bmi's default batch, drawn from its training half of the samples
PROBE_TIMEOUT_S = 300
ONE_THREAD_SLACK = 1.15  # CPU seconds above this many times the wall seconds: more than one core at work
# pip alone picks a jax too new for the equinox bmi pins (jax.core.pp_eqn_rules went in jax 0.4.34); 0.4.30 works
SETUP = ("python3.11 -m venv /tmp/bmi-venv && /tmp/bmi-venv/bin/pip install benchmark-mi jax==0.4.30 "
         "jaxlib==0.4.30")
FIX = f"give the Python interpreter of an environment with benchmark-mi installed, e.g. /tmp/bmi-venv/bin/python " \
      f"after `{SETUP}`"


def target_tasks() -> list[tuple[str, str, dict[str, Any]]]:
    """The (label, name, params) of bmi_core's tasks in the four target groups (not the additive-noise pair)."""
    from harness import suite

    loaded = suite.load("bmi_core")  # the registered suite, as the wheel ships it
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for cell in loaded.cells:
        if not cell.data.startswith("additive"):
            seen.setdefault(cell.data_label, (cell.data, cell.data_params))
    return [(label, name, params) for label, (name, params) in seen.items()]


def sample_tasks(tasks: list[tuple[str, str, dict[str, Any]]], n: int, seed: int) -> list[dict[str, Any]]:
    """Each task's label, true MI and (x, y): n pairs drawn with seed, standardised per dimension, float32."""
    from harness import registry

    samples = []
    for label, name, params in tasks:
        task = registry.get("task", name).instantiate(params)
        x, y = task.sample(n, np.random.default_rng(seed))
        x, y = (((a - a.mean(0)) / a.std(0)).astype(np.float32) for a in (x, y))  # preprocess = "standardize"
        samples.append({"task": label, "truth": float(task.ground_truth("mi").value), "x": x, "y": y})
    return samples


def run_ours(samples: list[dict[str, Any]], seed: int, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """harness.estimate("infonce") at its defaults on each task, one torch thread: value, CPU and wall seconds."""
    import torch

    import harness
    from harness.python_api import EstimateFlag

    torch.set_num_threads(1)
    rows = []
    for i, sample in enumerate(samples, 1):
        with warnings.catch_warnings():  # the flags are kept in the row, not warned task after task
            warnings.simplefilter("ignore", EstimateFlag)
            cpu, wall = time.process_time(), time.perf_counter()
            estimate = harness.estimate("infonce", sample["x"], sample["y"], seed=seed)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rows.append({"value": finite_or_none(estimate.value), "cpu_s": cpu, "wall_s": wall,
                     "flags": sorted(estimate.flags)})
        progress(f"ours {i}/{len(samples)}: {sample['task']}: {estimate.value:.3f} nats, {cpu:.1f} CPU s")
    return rows


def reference_interpreter(path: str) -> str:
    """The interpreter `--reference-python` names, checked to be an executable file (else a UserError)."""
    found = Path(path).expanduser()
    if not found.exists() and os.sep not in path and shutil.which(path):
        found = Path(shutil.which(path) or path)
    if not found.exists():
        raise UserError(f"--reference-python {path}: no such file; {FIX}.")
    if found.is_dir():
        raise UserError(f"--reference-python {path} is a folder, not a Python interpreter; {FIX}.")
    if not os.access(found, os.X_OK):
        raise UserError(f"--reference-python {path} is not executable; {FIX}.")
    return str(found)


def probe_reference(python: str) -> dict[str, str]:
    """The bmi and jax versions of the reference environment; a UserError when it cannot import bmi."""
    install = f"install benchmark-mi in that environment: {python} -m pip install benchmark-mi jax==0.4.30 jaxlib==0.4.30"
    try:
        answer = subprocess.run([python, str(WORKER), "--probe"], capture_output=True, text=True,
                                timeout=PROBE_TIMEOUT_S, env=reference_worker.one_thread_env(dict(os.environ)),
                                cwd=tempfile.gettempdir())
    except OSError as error:
        raise UserError(f"--reference-python {python} cannot be run ({error.strerror or error}); {FIX}.") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"--reference-python {python} did not answer within {PROBE_TIMEOUT_S} s when importing "
                        "bmi; check that environment by hand (python -c 'import bmi').") from None
    if answer.returncode != 0:
        last = last_lines(answer.stderr, 1) or f"exit code {answer.returncode}"
        raise UserError(f"--reference-python {python} cannot import bmi ({last}); {install}.")
    for line in answer.stdout.splitlines():
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict) and "bmi" in found:
            return found
    raise UserError(f"--reference-python {python} did not answer as a Python interpreter with bmi would "
                    f"(it printed {answer.stdout[-200:]!r}); {FIX}.")


def run_reference(python: str, samples: list[dict[str, Any]], seed: int,
                  progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """The reference worker's value, CPU and wall seconds (and steps) per task; a UserError if it dies."""
    with tempfile.TemporaryDirectory(prefix="mi-harness-versus-") as folder:
        path = os.path.join(folder, "samples.npz")
        reference_worker.write_samples(path, seed, [(s["task"], s["x"], s["y"]) for s in samples])
        rows: dict[str, dict[str, Any]] = {}
        with open(os.path.join(folder, "stderr.txt"), "w+") as stderr:
            worker = subprocess.Popen([python, str(WORKER), path], stdout=subprocess.PIPE, stderr=stderr, text=True,
                                      env=reference_worker.one_thread_env(dict(os.environ)), cwd=folder)
            try:
                for line in worker.stdout or ():
                    if (row := parse_result(line)) is not None:
                        rows[row["task"]] = row
                        value = "no estimate" if row["value"] is None else f"{row['value']:.3f} nats"
                        progress(f"reference {len(rows)}/{len(samples)}: {row['task']}: {value}, "
                                 f"{row['cpu_s']:.1f} CPU s")
                code = worker.wait()
            finally:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
            stderr.seek(0)
            errors = stderr.read()
    missing = [s["task"] for s in samples if s["task"] not in rows]
    if code != 0 or missing:
        last = last_lines(errors, 5) or "(nothing)"
        raise UserError(f"the reference worker ({python}) stopped after {len(rows)} of {len(samples)} tasks "
                        f"(exit code {code}); the last lines it wrote to stderr:\n  {last}")
    return [rows[s["task"]] for s in samples]


def parse_result(line: str) -> dict[str, Any] | None:
    """A result line of the worker as a dict, or None for any other line."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict) or not {"task", "value", "cpu_s", "wall_s"} <= set(row):
        return None
    return row


def last_lines(text: str, count: int) -> str:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n  ".join(line[:300] for line in lines[-count:])


def finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def mae(values: list[float | None], truths: list[float]) -> float | None:
    """Mean absolute error over the tasks with an estimate (None when there is none)."""
    errors = [abs(v - t) for v, t in zip(values, truths, strict=True) if v is not None]
    return float(np.mean(errors)) if errors else None


def ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def median_ratio(tasks: list[dict[str, Any]], key: str) -> float | None:
    """The median over tasks of reference / ours seconds."""
    ratios = [r for t in tasks if (r := ratio(t[f"reference_{key}"], t[f"ours_{key}"])) is not None]
    return statistics.median(ratios) if ratios else None


def summarise(samples: list[dict[str, Any]], ours: list[dict[str, Any]], reference: list[dict[str, Any]] | None,
              n: int, seed: int, versions: dict[str, str] | None) -> dict[str, Any]:
    """The comparison as one JSON-ready object; every reference number is None when the reference did not run."""
    tasks = []
    for i, (sample, mine) in enumerate(zip(samples, ours, strict=True)):
        theirs = reference[i] if reference else {}
        tasks.append({"task": sample["task"], "truth": sample["truth"], "ours": mine["value"],
                      "reference": theirs.get("value"), "ours_cpu_s": mine["cpu_s"], "ours_wall_s": mine["wall_s"],
                      "reference_cpu_s": theirs.get("cpu_s"), "reference_wall_s": theirs.get("wall_s"),
                      "reference_steps": theirs.get("steps"), "ours_flags": mine["flags"]})
    truths = [t["truth"] for t in tasks]
    ours_mae = mae([t["ours"] for t in tasks], truths)
    summary: dict[str, Any] = {
        "tasks": tasks, "n": n, "seed": seed, "ours_mae": ours_mae, "reference_mae": None, "error_ratio": None,
        "time_ratio": None, "time_ratio_median": None, "wall_ratio": None, "wall_ratio_median": None,
        "ours_failed": sum(t["ours"] is None for t in tasks), "reference_failed": None,
        "ours_cpu_s": sum(t["ours_cpu_s"] for t in tasks), "ours_wall_s": sum(t["ours_wall_s"] for t in tasks),
        "reference_cpu_s": None, "reference_wall_s": None,
        "ours_estimator": f'harness.estimate("infonce", x, y, seed={seed}) at its defaults, one torch thread',
        "reference_estimator": None, "versions": versions}
    if reference:
        ref_mae = mae([t["reference"] for t in tasks], truths)
        ref_cpu, ref_wall = (sum(t[key] for t in tasks) for key in ("reference_cpu_s", "reference_wall_s"))
        summary.update({
            "reference_mae": ref_mae, "error_ratio": ratio(ref_mae, ours_mae),
            "reference_failed": sum(t["reference"] is None for t in tasks),
            "reference_cpu_s": ref_cpu, "reference_wall_s": ref_wall,
            "time_ratio": ratio(ref_cpu, summary["ours_cpu_s"]),
            "time_ratio_median": median_ratio(tasks, "cpu_s"),
            "wall_ratio": ratio(ref_wall, summary["ours_wall_s"]),
            "wall_ratio_median": median_ratio(tasks, "wall_s"),
            "reference_estimator": f"bmi.estimators.InfoNCEEstimator(verbose=False, seed={seed}) at its package "
                                   "defaults, one CPU (pinned, one XLA thread)"})
    return summary


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(summary: dict[str, Any]) -> str:
    """The comparison as markdown: a row per task, then the errors and the ratios."""
    with_reference = summary["reference_estimator"] is not None
    head = ["task", "true MI", "ours", *(["reference"] if with_reference else []), "ours CPU s",
            *(["reference CPU s"] if with_reference else [])]
    lines = [f"## Against the reference package: {len(summary['tasks'])} Beyond-Normal core tasks, "
             f"n = {summary['n']}, sampling seed {summary['seed']}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in summary["tasks"]:
        cells = [t["task"], _number(t["truth"], 3), _number(t["ours"], 3),
                 *([_number(t["reference"], 3)] if with_reference else []), _number(t["ours_cpu_s"], 2),
                 *([_number(t["reference_cpu_s"], 2)] if with_reference else [])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"- ours: {summary['ours_estimator']}"]
    if with_reference:
        versions = summary["versions"] or {}
        lines.append(f"- reference: {summary['reference_estimator']} (benchmark-mi {versions.get('bmi', '?')}, "
                     f"jax {versions.get('jax', '?')})")
    lines.append(f"- MAE ours: {_number(summary['ours_mae'], 4)} nats"
                 + (f" ({summary['ours_failed']} task(s) without an estimate)" if summary["ours_failed"] else ""))
    if not with_reference:
        lines.append(f"- no reference: to add bmi's InfoNCE, install benchmark-mi in another environment "
                     f"(`{SETUP}`) and pass --reference-python /tmp/bmi-venv/bin/python (or set {REFERENCE_ENV}).")
        return "\n".join(lines)
    failed = summary["reference_failed"]
    lines += [
        f"- MAE reference: {_number(summary['reference_mae'], 4)} nats"
        + (f" ({failed} task(s) without an estimate)" if failed else ""),
        f"- error ratio (reference MAE / ours MAE): {_number(summary['error_ratio'], 2)}",
        f"- time ratio (reference CPU s / ours CPU s): {_number(summary['time_ratio'], 2)} in total "
        f"({summary['reference_cpu_s']:.1f} / {summary['ours_cpu_s']:.1f} s), "
        f"{_number(summary['time_ratio_median'], 2)} median per task",
        f"- wall ratio (reference wall s / ours wall s): {_number(summary['wall_ratio'], 2)} in total "
        f"({summary['reference_wall_s']:.1f} / {summary['ours_wall_s']:.1f} s), "
        f"{_number(summary['wall_ratio_median'], 2)} median per task"]
    for side in ("ours", "reference"):
        per_wall = summary[f"{side}_cpu_s"] / max(summary[f"{side}_wall_s"], 1e-9)
        if per_wall > ONE_THREAD_SLACK:
            lines.append(f"- warning: {side} used {per_wall:.2f} CPU seconds per wall second, more than one core; "
                         "its CPU seconds are not one thread's")
    return "\n".join(lines)


def main(reference_python: str | None = None, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED,
         tasks: int | None = None, fmt: str = "text", output: str | None = None,
         echo: Callable[[str], None] = print, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the comparison and print it (markdown, or with fmt "json" one object); returns the object."""
    python = versions = None
    if reference_python:
        python = reference_interpreter(reference_python)
        if samples < 2 * REFERENCE_BATCH:
            raise UserError(f"--samples {samples} is too few for the reference: bmi trains on half the samples "
                            f"in batches of {REFERENCE_BATCH}, so it needs at least {2 * REFERENCE_BATCH}.")
        versions = probe_reference(python)  # before ours runs: a broken environment fails at once
    quiet = progress or (lambda _line: None)
    chosen = target_tasks()[:tasks]
    drawn = sample_tasks(chosen, samples, seed)
    ours = run_ours(drawn, seed, quiet)
    reference = run_reference(python, drawn, seed, quiet) if python else None
    summary = summarise(drawn, ours, reference, samples, seed, versions)
    if python:
        summary["reference_python"] = python
    result = {"versus_reference": summary}
    echo(json.dumps(result) if fmt == "json" else render(summary))
    if output:
        with open(output, "w") as handle:
            json.dump(result, handle, indent=1)
    return result
