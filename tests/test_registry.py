"""The registry: built-ins through the plugin path, clear errors, runtime registration."""

import inspect

import pytest

from harness import EncoderSpec, EstimatorSpec, NoParams, hookimpl, hookspecs, registry
from harness.errors import UserError

HOOKS = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


def test_builtins_register_through_the_plugin_manager():
    names = {row["name"] for row in registry.plugins()}
    assert set(registry.BUILTIN_PLUGINS) <= names
    assert {"infonce", "nwj", "mine"} <= set(registry.specs("estimator"))
    assert {"gaussian", "staircase", "staircase_cubic"} <= set(registry.specs("task"))
    assert "quickstart" in registry.specs("suite")


def test_unknown_name_lists_what_exists_and_suggests():
    with pytest.raises(UserError) as caught:
        registry.get("estimator", "infonse")
    message = str(caught.value)
    assert "Did you mean 'infonce'?" in message
    assert all(name in message for name in registry.specs("estimator"))


class _Duplicate:
    @hookimpl
    def register_estimators(self, register):
        register(EstimatorSpec(name="infonce", summary="a second infonce", build=lambda p: None))


def test_a_name_registered_twice_names_both_plugins_and_leaves_the_first_in_place():
    with pytest.raises(UserError, match="plugin 'duplicate-test' cannot be registered: it registers estimator "
                                        "'infonce', which plugin 'plugins.estimators.variational' registers already"):
        registry.register(_Duplicate(), name="duplicate-test")
    assert registry.get("estimator", "infonce").summary.startswith("InfoNCE")
    assert "duplicate-test" not in {row["name"] for row in registry.plugins()}


class _BadSelection:
    @hookimpl
    def register_encoders(self, register):
        register(EncoderSpec(name="bad_selection_test", summary="", build=lambda p: None,
                             published_selection="best_of_all"))


def test_an_unknown_published_selection_is_refused_naming_the_valid_ones():
    with pytest.raises(UserError, match="encoder 'bad_selection_test': published_selection 'best_of_all' is not one "
                                        "of 'fixed', 'best_on_test', 'best_on_validation'"):
        registry.register(_BadSelection(), name="bad-selection-test")
    assert "bad_selection_test" not in registry.specs("encoder")


class _Constant:
    @hookimpl
    def register_estimators(self, register):
        register(EstimatorSpec(name="constant_test", summary="always 1", params=NoParams,
                               build=lambda p: "built"))


def test_runtime_registration_and_removal():
    registry.register(_Constant(), name="constant-test")
    assert registry.get("estimator", "constant_test").instantiate() == "built"
    registry.unregister("constant-test")
    assert "constant_test" not in registry.specs("estimator")


def test_lazy_build_string_imports_on_instantiation():
    spec = EstimatorSpec(name="lazy", summary="", build="plugins.estimators.critics:mlp")
    assert spec.builder() is __import__("plugins.estimators.critics", fromlist=["mlp"]).mlp


def test_plugin_file_that_does_not_exist_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        registry.load_plugin_file(str(tmp_path / "missing.py"))


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring_and_a_test(hook):
    assert getattr(hookspecs, hook).__doc__.strip()
    assert f"def test_hook_{hook}" in open(__file__).read() + open(__file__.replace("test_registry", "test_hooks")).read()
