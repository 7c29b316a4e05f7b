"""One test per hook (a meta-test in test_registry checks each hook has one), plus the plugin guide's coverage."""

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harness import hookimpl, registry
from harness.cli import cli

GUIDE = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()


def _kind_has_builtins(kind):
    specs = registry.specs(kind)
    assert specs, f"no {kind} registered"
    for name, spec in specs.items():
        assert spec.name == name and spec.kind == kind and isinstance(spec.summary, str)
    return specs


def test_hook_register_estimators():
    assert {"infonce", "nwj", "mine", "ksg"} <= set(_kind_has_builtins("estimator"))


def test_hook_register_tasks():
    assert {"gaussian", "staircase"} <= set(_kind_has_builtins("task"))


def test_hook_register_encoders():
    _kind_has_builtins("encoder")


def test_hook_register_datasets():
    _kind_has_builtins("dataset")


def test_hook_register_suites():
    suites = _kind_has_builtins("suite")
    for spec in suites.values():
        assert Path(spec.path).is_file()


class _Greeting:
    @hookimpl
    def register_commands(self, cli):
        @cli.command("greet-test")
        @click.argument("name")
        def greet(name):
            """Say hello."""
            click.echo(f"hello, {name}")


def test_hook_register_commands():
    registry.add_commands(cli)
    owners = [impl.plugin_name for impl in registry.plugin_manager().hook.register_commands.get_hookimpls()]
    assert "plugins.bench" in owners and cli.commands["bench"].callback.__module__ == "plugins.bench"
    assert "--machine-steps" in CliRunner().invoke(cli, ["bench", "--help"]).output
    # registering the command must stay cheap: the benchmark imports torch only when it runs
    probe = "import sys, plugins.bench; assert 'torch' not in sys.modules, 'plugins.bench imported torch'"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0
    registry.register(_Greeting(), name="greeting-test")
    try:
        registry.add_commands(cli)
        result = CliRunner().invoke(cli, ["greet-test", "plugin"])
        assert result.exit_code == 0 and result.output.endswith("hello, plugin\n"), result.output
    finally:
        registry.unregister("greeting-test")
        cli.commands.pop("greet-test", None)


class _TakesRun:
    @hookimpl
    def register_commands(self, cli):
        @cli.command("run")
        def run():
            """Would replace mi-harness run."""


def test_a_plugin_command_cannot_replace_a_command_that_exists():
    registry.register(_TakesRun(), name="takes-run-test")
    try:
        registry.add_commands(cli)
        assert cli.commands["run"].callback.__module__ == "harness.cli"
        assert any("'takes-run-test'" in line and "it adds command 'run', which exists already" in line
                   for line in registry.problems())
    finally:
        registry.unregister("takes-run-test")


@pytest.mark.parametrize("hook", registry.HOOK_NAMES)
def test_every_hook_is_documented_in_the_plugin_guide(hook):
    assert f"### `{hook}`" in GUIDE
