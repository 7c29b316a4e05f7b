"""The plugin's own tests: mi-harness's contract checks on everything it registers."""

from harness.testing import PluginContract


class TestExampleContract(PluginContract):
    plugin = "example"  # the entry-point name in pyproject.toml
