"""The reference side of `mi-harness bench --versus-reference`: the `bmi` package's InfoNCE on given samples.

This file runs under another environment's Python, one where `benchmark-mi` (import name `bmi`, on
JAX) is installed and the harness is not, so it imports only the standard library, numpy and bmi:

    REFERENCE_PYTHON plugins/bench/reference_worker.py --probe          # {"bmi": ..., "jax": ...}
    REFERENCE_PYTHON plugins/bench/reference_worker.py SAMPLES.npz      # one JSON line per task

The estimator is `bmi.estimators.InfoNCEEstimator(verbose=False, seed=SEED)`, that is, the package's
defaults as Beyond Normal (Czyz et al. 2023) ran its InfoNCE (`InfoNCEEstimator(verbose=False)` in
its workflows): a ReLU MLP critic on the concatenated pair with hidden layers (16, 8), Adam at learning
rate 0.1, batch 256, each side standardised, a 50/50 train/test split, the held-out InfoNCE every 250 steps,
at most 10 000 steps, stopping early once two held-out values in a row have not beaten the best; the
estimate is the best held-out value (`estimate_with_info`, which `estimate` returns the value of, also
says how many steps ran). `verbose` only silences its printing; the seed, which sets the critic's
initialisation, the split and the batches (the paper kept the default, 42, for every run), is the
comparison's sampling seed, the seed ours gets.

It runs JAX on one CPU, as ours runs one torch thread: XLA's Eigen thread pool off and one intra-op
thread (XLA_FLAGS), one BLAS/OpenMP thread for numpy, JAX on the CPU platform, all set before numpy or
jax is imported (so numpy is imported inside the functions); and, where the OS allows it (Linux), the
process pinned to one CPU, because XLA's flags do not cover its other threads: without the pin, jax
0.4.30 kept two helper threads busy for about 1 s per task beside the main one (CPU seconds 16% above
wall seconds with a free second core); pinned, XLA sizes its pools to the one CPU and the CPU seconds
stay at or below the wall seconds. Each line carries the task's CPU seconds (time.process_time: every
thread of this process) and wall seconds, both around the estimate alone (JAX's compilation for the
task's shapes included, interpreter start-up and imports not), so the harness can check that CPU
seconds do not exceed wall seconds.

The samples file (written by `write_samples`) holds `x0`, `y0`, `x1`, `y1`, ... as float32 arrays and
`meta`, a JSON string: {"seed": SEED, "labels": [label of task 0, ...]}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

ONE_THREAD_ENV = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def one_thread_env(environ: dict[str, str]) -> dict[str, str]:
    """`environ` with the one-thread settings added (XLA_FLAGS appended to, the others set)."""
    env = dict(environ)
    for key, value in ONE_THREAD_ENV.items():
        if key != "XLA_FLAGS" or not env.get(key):
            env[key] = value
        elif value not in env[key]:
            env[key] = f"{env[key]} {value}"
    return env


def pin_to_one_cpu() -> int | None:
    """Pin this process to the lowest CPU it may run on (Linux); that CPU, or None where it cannot."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def write_samples(path: str, seed: int, tasks: list[tuple[str, Any, Any]]) -> None:
    """Write [(label, x, y), ...] (x, y: (n, d) arrays) and the seed as the worker reads them."""
    import numpy as np

    arrays = {}
    for i, (_, x, y) in enumerate(tasks):
        arrays[f"x{i}"], arrays[f"y{i}"] = np.asarray(x, np.float32), np.asarray(y, np.float32)
    meta = json.dumps({"seed": int(seed), "labels": [label for label, _, _ in tasks]})
    np.savez(path, meta=np.array(meta), **arrays)


def read_samples(path: str) -> tuple[int, list[tuple[str, Any, Any]]]:
    """The seed and [(label, x, y), ...] of a file `write_samples` wrote (no pickles are loaded)."""
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        tasks = [(label, data[f"x{i}"], data[f"y{i}"]) for i, label in enumerate(meta["labels"])]
    return int(meta["seed"]), tasks


def result_line(label: str, value: float, cpu_s: float, wall_s: float, steps: int | None = None) -> str:
    """One task's result as the JSON line the harness reads (a non-finite value is written as null)."""
    finite = value == value and abs(value) != float("inf")
    return json.dumps({"task": label, "value": float(value) if finite else None, "cpu_s": float(cpu_s),
                       "wall_s": float(wall_s), "steps": None if steps is None else int(steps)})


def versions() -> dict[str, str]:
    """The installed versions of benchmark-mi (bmi) and jax."""
    from importlib.metadata import version

    return {"bmi": version("benchmark-mi"), "jax": version("jax")}


def run(path: str, out: Any) -> None:
    """Estimate every task of the samples file with bmi's InfoNCE, writing one line per task to `out`."""
    import numpy as np
    from bmi.estimators import InfoNCEEstimator

    seed, tasks = read_samples(path)
    for label, x, y in tasks:
        estimator = InfoNCEEstimator(verbose=False, seed=seed)
        cpu, wall = time.process_time(), time.perf_counter()
        result = estimator.estimate_with_info(x, y)
        value = float(np.asarray(result.mi_estimate))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        steps = result.additional_information.get("n_training_steps")
        print(result_line(label, value, cpu, wall, steps), file=out, flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: reference_worker.py --probe | SAMPLES.npz", file=sys.stderr)
        return 2
    os.environ.update(one_thread_env(dict(os.environ)))  # before numpy and jax are imported
    pin_to_one_cpu()  # before jax is imported: XLA sizes its thread pools to the CPUs it may use
    out, sys.stdout = sys.stdout, sys.stderr  # whatever a library prints cannot break the JSON lines
    if argv[1] == "--probe":
        import bmi.estimators  # noqa: F401  (fails here, with its own error, if bmi cannot be imported)

        print(json.dumps(versions()), file=out, flush=True)
    else:
        run(argv[1], out)
    return 0


if __name__ == "__main__":
    # Run as a file, Python puts this folder first on sys.path; the harness's modules beside this one are no
    # part of the reference environment, and none may shadow a module numpy, jax or bmi imports.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.exit(main(sys.argv))
