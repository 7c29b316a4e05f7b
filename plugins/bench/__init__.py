"""`mi-harness bench`: how fast critic training is, against the machine and against a plain loop.

Registered through `register_commands`; the command imports torch and the workloads
(`plugins.bench.benchmark`) only when it runs, so listing plugins stays cheap.
"""

from __future__ import annotations

import sys

import click

from harness import hookimpl


@click.command()
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--steps", default=200, show_default=True, help="Staircase steps per critic (4000: the full protocol).")
@click.option("--levels", default=1, show_default=True, type=click.IntRange(1, 5),
              help="Staircase MI levels (1-5 of 2, 4, 6, 8, 10 nats), 3 estimators x 3 seeds each.")
@click.option("--small-steps", default=300, show_default=True, help="Steps of the 16 small-critic tasks.")
@click.option("--small/--no-small", default=True, show_default=True, help="Run the 16 small-critic tasks.")
@click.option("--machine-steps", default=2000, show_default=True,
              help="Steps of the whole-machine staircase comparison (CPU; 0 skips it).")
@click.option("--repeats", default=2, show_default=True, help="Interleaved repeats of baseline and ours.")
@click.option("--output", "-o", type=click.Path(), help="Also write the numbers as JSON.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object on stdout (per_core_ratio, per_machine_ratio, small_critics_ratio, "
                   "training_gflops, peak_gflops, kernel, and the whole report).")
@click.option("--history", type=click.Path(file_okay=False), metavar="DIR",
              help="Compare the headline numbers with the last run saved in DIR under the same settings, then "
                   "save this run there (tox -e bench keeps them in .benchmarks/mi-harness-bench).")
@click.option("--max-drop", type=click.FloatRange(0, 1, max_open=True), metavar="FRACTION",
              help="With --history: exit 1 when a headline number fell by more than this fraction "
                   "(0.2: 20%) since the last saved run.")
@click.option("--versus-reference", is_flag=True,
              help="Instead of the speed workloads: our InfoNCE against the reference package's (bmi) on the "
                   "Beyond-Normal core tasks, errors and CPU seconds side by side (docs/performance.md).")
@click.option("--reference-python", type=str, metavar="PATH", envvar="MI_HARNESS_REFERENCE_PYTHON", show_envvar=True,
              help="With --versus-reference: the Python interpreter of another environment with benchmark-mi "
                   "installed; without it only ours runs.")
@click.option("--samples", default=5000, show_default=True, type=click.IntRange(16, 1_000_000),
              help="With --versus-reference: pairs sampled per task.")
@click.option("--seed", default=7, show_default=True, type=click.IntRange(0, 2**32 - 1),
              help="With --versus-reference: the sampling seed (and both estimators' seed). 7: no committed "
                   "report holds it (the suites use 0-4, bmi_core 0-2; the defaults were tuned on 5 and 6).")
@click.option("--tasks", type=click.IntRange(1), help="With --versus-reference: only the first N of the 41 tasks.")
@click.pass_context
def bench(ctx: click.Context, device: str, steps: int, levels: int, small_steps: int, small: bool,
          machine_steps: int, repeats: int, output: str | None, fmt: str, history: str | None,
          max_drop: float | None, versus_reference: bool, reference_python: str | None, samples: int, seed: int,
          tasks: int | None) -> None:
    """Critic-training speed: GFLOP/s beside the matmul peak, and against a plain PyTorch loop."""
    if versus_reference or _given(ctx, "reference_python", "samples", "seed", "tasks"):
        return _versus(ctx, versus_reference, reference_python, samples, seed, tasks, fmt, output)
    if max_drop is not None and not history:
        from harness.errors import UserError

        raise UserError("--max-drop compares with a saved run: give --history DIR too.")
    from plugins.bench import benchmark

    report = benchmark.main(device=device, steps=steps, levels=levels, repeats=repeats, small_steps=small_steps,
                            small=small, machine_steps=machine_steps, output=output, echo=click.echo, fmt=fmt,
                            history=history, max_drop=max_drop)
    if report.drops:
        click.echo(f"slower than the last saved run by more than --max-drop {max_drop:g}: "
                   + "; ".join(report.drops), err=True)
        sys.exit(1)


def _given(ctx: click.Context, *names: str) -> list[str]:
    """The options among `names` given on the command line."""
    return [name for name in names if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]


def _options(names: list[str]) -> str:
    """'--a applies' or '--a, --b apply'."""
    return ", ".join("--" + name.replace("_", "-") for name in names) + (" applies" if len(names) == 1 else " apply")


def _versus(ctx: click.Context, versus_reference: bool, reference_python: str | None, samples: int, seed: int,
            tasks: int | None, fmt: str, output: str | None) -> None:
    from harness.errors import UserError

    if not versus_reference:
        named = _given(ctx, "reference_python", "samples", "seed", "tasks")
        raise UserError(f"{_options(named)} only with --versus-reference; add it, or leave "
                        f"{'it' if len(named) == 1 else 'them'} out for the speed workloads.")
    if speed := _given(ctx, "device", "steps", "levels", "small_steps", "small", "machine_steps", "repeats",
                       "history", "max_drop"):
        raise UserError(f"--versus-reference runs on the CPU with the estimators' own budgets; {_options(speed)} "
                        "to the speed workloads only.")
    from plugins.bench import versus

    versus.main(reference_python=reference_python or None, samples=samples, seed=seed, tasks=tasks, fmt=fmt,
                output=output, echo=click.echo,
                progress=(lambda line: click.echo(line, err=True)) if fmt == "text" else None)


@hookimpl
def register_commands(cli):
    """`mi-harness bench`."""
    cli.add_command(bench)
