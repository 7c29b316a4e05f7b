"""One test per hook (a meta-test in test_registry checks each hook has one), plus README coverage."""

from pathlib import Path

import pytest

from harness import registry

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


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
        assert Path(spec.instantiate()).is_file()


@pytest.mark.parametrize("hook", ["register_estimators", "register_tasks", "register_encoders",
                                  "register_datasets", "register_suites"])
def test_every_hook_is_documented_in_the_readme(hook):
    assert f"### `{hook}`" in README
