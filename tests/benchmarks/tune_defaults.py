"""How the estimators' defaults were chosen: one estimator through `harness.estimate` on the Beyond-Normal
core's 41 target tasks (not the additive-noise pair), on sampling seeds no report contains.

    python tests/benchmarks/tune_defaults.py '{"chosen": {}, "every100": {"checkpoint_every": 100}}' 5,6 [infonce]

Prints one JSON line per configuration and seed: the mean absolute error against the truth and the CPU
seconds per task (time.process_time, one torch thread). docs/results.md#defaults has the table it gave.
"""

import json
import sys
import time

import numpy as np

import harness
from harness import registry
from plugins.bench.versus import target_tasks


def score(estimator: str, config: dict, seed: int) -> dict:
    errors, seconds = [], []
    for _, name, params in target_tasks():
        task = registry.get("task", name).instantiate(params)
        x, y = task.sample(5000, np.random.default_rng(seed))
        x, y = ((a - a.mean(0)) / a.std(0) for a in (x, y))  # the suite's preprocess = "standardize"
        started = time.process_time()
        estimate = harness.estimate(estimator, x, y, seed=seed, **config)
        seconds.append(time.process_time() - started)
        errors.append(abs(estimate.value - task.ground_truth("mi").value))
    return {"mae": round(float(np.mean(errors)), 4), "cpu_mean": round(float(np.mean(seconds)), 2),
            "cpu_max": round(float(np.max(seconds)), 2), "tasks": len(errors)}


def main(argv: list[str]) -> None:
    configs, seeds = json.loads(argv[1]), [int(s) for s in argv[2].split(",")]
    estimator = argv[3] if len(argv) > 3 else "infonce"
    for label, config in configs.items():
        for seed in seeds:
            print(json.dumps({"config": label, "seed": seed, **score(estimator, config, seed)}), flush=True)


if __name__ == "__main__":
    main(sys.argv)
