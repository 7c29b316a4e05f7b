"""`mi-harness bench`: how fast critic training is, against the machine and against a plain loop.

Registered through `register_commands`; the command imports torch and the workloads
(`plugins.bench.benchmark`) only when it runs, so listing plugins stays cheap.
"""

from __future__ import annotations

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
def bench(device: str, steps: int, levels: int, small_steps: int, small: bool, machine_steps: int, repeats: int,
          output: str | None, fmt: str) -> None:
    """Critic-training speed: GFLOP/s beside the matmul peak, and against a plain PyTorch loop."""
    from plugins.bench import benchmark

    benchmark.main(device=device, steps=steps, levels=levels, repeats=repeats, small_steps=small_steps,
                   small=small, machine_steps=machine_steps, output=output, echo=click.echo, fmt=fmt)


@hookimpl
def register_commands(cli):
    """`mi-harness bench`."""
    cli.add_command(bench)
