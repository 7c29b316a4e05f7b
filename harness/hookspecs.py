"""The plugin contract: each hook receives a `register` callback taking a Spec (commands: the click group)."""

import pluggy

hookspec = pluggy.HookspecMarker("mi_harness")
hookimpl = pluggy.HookimplMarker("mi_harness")


@hookspec
def register_estimators(register):
    """Register MI or divergence estimators: register(EstimatorSpec(...))."""


@hookspec
def register_tasks(register):
    """Register tasks with known ground truth: register(TaskSpec(...))."""


@hookspec
def register_encoders(register):
    """Register representation learners: register(EncoderSpec(...))."""


@hookspec
def register_datasets(register):
    """Register real datasets read from the data root: register(DatasetSpec(...))."""


@hookspec
def register_suites(register):
    """Register suite files shipped with a plugin: register(SuiteSpec(...))."""


@hookspec
def register_commands(cli):
    """Add click commands to the `mi-harness` command group: cli.add_command(...) or @cli.command()."""
