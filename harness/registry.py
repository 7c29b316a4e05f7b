"""One PluginManager: the built-ins and the installed entry points, registered the same way.

A plugin that fails to import, names a hook that does not exist, or fails while registering
is left out whole and recorded as broken (name, where it came from, the error); the rest of
the harness goes on without it, and every command says so in one line per plugin.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

import pluggy

from harness import hookspecs
from harness.api import NAME_PATTERN, PUBLISHED_SELECTIONS, EncoderSpec, Params, PluginKind, Spec, SuiteSpec
from harness.errors import UserError, describe_exception, unknown_name

ENTRY_POINT_GROUP = "mi_harness"
LOAD_VARIABLE = "MI_HARNESS_LOAD_PLUGINS"
BUILTIN_PLUGINS = (
    "plugins.estimators.variational",
    "plugins.estimators.nonneural",
    "plugins.tasks",
    "plugins.datasets.graphs",
    "plugins.datasets.vision_series",
    "plugins.encoders.graphs",
    "plugins.encoders.dim_cpc",
    "plugins.suites",
    "plugins.bench",
)
HOOKS = {
    "estimator": "register_estimators",
    "task": "register_tasks",
    "encoder": "register_encoders",
    "dataset": "register_datasets",
    "suite": "register_suites",
}
HOOK_NAMES = sorted(name for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
                    if hasattr(function, "mi_harness_spec"))
_MARK = "mi_harness_impl"  # the attribute harness.hookimpl sets on a hook implementation


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin left out: its registry name, where it came from, and what went wrong."""

    name: str
    source: str
    error: str
    names: tuple[tuple[str, str], ...] = ()  # (kind, name) it tried to register before failing

    def line(self) -> str:
        return f"plugin {self.name!r} ({self.source}) is broken and was skipped: {self.error}. {_exclude_hint(self)}"


@dataclass
class _Loaded:
    pm: pluggy.PluginManager
    sources: dict[str, str] = field(default_factory=dict)  # plugin name -> where it came from
    versions: dict[str, str] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)
    command_failures: list[BrokenPlugin] = field(default_factory=list)
    excluded: list[importlib.metadata.EntryPoint] = field(default_factory=list)
    not_installed: list[str] = field(default_factory=list)


_plugin_files: list[str] = []
_warned: set[str] = set()


def harness_version() -> str:
    """The installed version, or 'source' when run from a checkout on PYTHONPATH (e.g. a bare GPU box)."""
    try:
        return importlib.metadata.version("mi-harness")
    except importlib.metadata.PackageNotFoundError:
        return "source"


@cache
def _loaded() -> _Loaded:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    state = _Loaded(pm)
    for module in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module), name=module)
        state.sources[module] = "built-in"
    installed = _entry_points()
    allowed = os.environ.get(LOAD_VARIABLE)
    chosen = installed if allowed is None else _chosen(installed, allowed, state)
    for entry_point in chosen:
        source = f"entry point {entry_point.name} = {entry_point.value}"
        if entry_point.dist is not None:
            source += f", from {entry_point.dist.name} {entry_point.dist.version}"
            state.versions[entry_point.name] = entry_point.dist.version
        try:
            plugin = entry_point.load()
            _register_checked(pm, plugin, entry_point.name)
        except Exception as error:  # noqa: BLE001 - a third party's import may raise anything
            state.broken.append(BrokenPlugin(entry_point.name, source, _reason(error)))
            continue
        state.sources[entry_point.name] = source
    return state


def plugin_manager() -> pluggy.PluginManager:
    return _loaded().pm


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    unique: dict[str, importlib.metadata.EntryPoint] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        unique.setdefault(entry_point.name, entry_point)
    return list(unique.values())


def _chosen(installed: list[importlib.metadata.EntryPoint], allowed: str, state: _Loaded
            ) -> list[importlib.metadata.EntryPoint]:
    """The entry points MI_HARNESS_LOAD_PLUGINS names; the others are remembered as excluded."""
    wanted = [name.strip() for name in allowed.split(",") if name.strip()]
    names = {entry_point.name for entry_point in installed}
    state.not_installed = [name for name in wanted if name not in names]
    state.excluded = [entry_point for entry_point in installed if entry_point.name not in wanted]
    return [entry_point for entry_point in installed if entry_point.name in wanted]


def _register_checked(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register `plugin`, refusing one whose hook implementations carry a name that is no hook."""
    problems = misnamed_hooks(plugin)
    if problems:
        raise UserError("; ".join(problems))
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as error:
        raise UserError(f"a hook implementation does not match its hook: {error}") from None
    except ValueError as error:  # pluggy: this name or this object is registered already
        raise UserError(f"cannot register plugin {name!r}: {error}") from None


def misnamed_hooks(plugin: object) -> list[str]:
    """Sentences for each hook implementation whose name is no hook, or hook lacking @hookimpl."""
    problems = []
    for attribute in dir(plugin):
        value = getattr(plugin, attribute, None)
        marked = hasattr(value, _MARK)
        if attribute in HOOK_NAMES:
            if callable(value) and not marked and _defined_in(plugin, value):
                problems.append(f"{attribute} is not decorated with @harness.hookimpl, so it would never be called")
            continue
        close = difflib.get_close_matches(attribute, HOOK_NAMES, n=1, cutoff=0.8)
        if marked or (close and callable(value) and _defined_in(plugin, value)):
            hint = f"did you mean {close[0]!r}?" if close else f"the hooks are {', '.join(HOOK_NAMES)}"
            problems.append(f"{attribute!r} is not a hook ({hint})")
    return problems


def _defined_in(plugin: object, value: Any) -> bool:
    """Whether a callable belongs to the plugin itself (not something it imported)."""
    owner = plugin.__name__ if inspect.ismodule(plugin) else type(plugin).__module__
    return getattr(value, "__module__", None) == owner


def register(plugin: object, name: str | None = None) -> None:
    """Register a plugin object at run time (a test fixture, a notebook, a plugin file).

    Unlike an installed plugin, a plugin registered here that is broken is an error at once.
    """
    name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin)}"
    try:
        _register_checked(plugin_manager(), plugin, name)
    except UserError as error:
        raise UserError(f"plugin {name!r} cannot be registered: {error}.") from None
    _loaded().sources[name] = "registered at run time"
    _collected.cache_clear()
    failure = next((b for b in all_broken() if b.name == name), None)
    if failure:
        unregister(name)
        raise UserError(f"plugin {name!r} cannot be registered: {failure.error}.")


def unregister(name: str) -> None:
    """Remove the plugin registered under `name` (a test fixture's, a notebook's, a plugin file's) and its specs."""
    plugin_manager().unregister(name=name)
    state = _loaded()
    state.sources.pop(name, None)
    state.command_failures = [failure for failure in state.command_failures if failure.name != name]
    if name in _plugin_files:
        _plugin_files.remove(name)
    _collected.cache_clear()


def loaded_plugin_files() -> list[str]:
    """Plugin files loaded in this process, so worker processes can load them too."""
    return list(_plugin_files)


def load_plugin_file(path: str) -> None:
    """Load a single .py file of hook implementations without packaging it."""
    if not os.path.isfile(path):
        raise UserError(f"plugin file {path} does not exist.")
    if path in _plugin_files:
        return
    spec = importlib.util.spec_from_file_location(f"mi_harness_file_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: not a Python file that can be loaded as a plugin.")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - the file is the user's own code
        raise UserError(f"plugin file {path} fails to load: {describe_exception(error)}.") from None
    register(module, name=path)
    _loaded().sources[path] = "plugin file"
    _plugin_files.append(path)


@cache
def _collected() -> tuple[dict[PluginKind, dict[str, Spec]], dict[tuple[str, str], str], tuple[BrokenPlugin, ...]]:
    """Every plugin's specs, each plugin all or nothing: (specs by kind, owner by (kind, name), broken)."""
    state = _loaded()
    found: dict[PluginKind, dict[str, Spec]] = {kind: {} for kind in HOOKS}
    owners: dict[tuple[str, str], str] = {}
    broken: list[BrokenPlugin] = []
    for name, plugin in state.pm.list_name_plugin():
        offered: list[Spec] = []
        try:
            for kind, hook in HOOKS.items():
                if callable(implementation := getattr(plugin, hook, None)) and hasattr(implementation, _MARK):
                    implementation(register=partial(_offer, offered, kind))
            for spec in offered:
                if (spec.kind, spec.name) in owners:
                    raise UserError(f"it registers {spec.kind} {spec.name!r}, which plugin "
                                    f"{owners[spec.kind, spec.name]!r} registers already")
                owners[spec.kind, spec.name] = name
        except Exception as error:  # noqa: BLE001 - a third party's hook may raise anything
            for spec in offered:
                if owners.get((spec.kind, spec.name)) == name:
                    del owners[spec.kind, spec.name]
            broken.append(BrokenPlugin(name, state.sources.get(name, "registered at run time"),
                                       _reason(error), tuple((s.kind, s.name) for s in offered)))
            continue
        for spec in offered:
            found[spec.kind][spec.name] = spec
    return found, owners, tuple(broken)


def _offer(offered: list[Spec], kind: PluginKind, spec: Any) -> None:
    """The `register` callback a hook receives: checks the spec, then keeps it with its plugin's others."""
    offered.append(_checked(spec, kind))


def _checked(spec: Any, kind: PluginKind) -> Spec:
    """A spec as its hook promised it, or a UserError saying what is wrong with it."""
    expected = SuiteSpec if kind == "suite" else Spec
    if not isinstance(spec, expected):
        raise UserError(f"{HOOKS[kind]} passed {type(spec).__name__} to register(); pass a harness."
                        f"{kind.capitalize()}Spec(...)")
    if spec.kind != kind:
        raise UserError(f"it registered a {spec.kind} from its {HOOKS[kind]} hook")
    if not isinstance(spec.name, str) or not re.fullmatch(NAME_PATTERN, spec.name):
        raise UserError(f"{kind} name {spec.name!r} is not a name: use letters, digits, '_', '.' and '-'")
    if not isinstance(spec.summary, str):
        raise UserError(f"{kind} {spec.name!r}: summary must be a string")
    if isinstance(spec, SuiteSpec) and not (os.path.isabs(spec.path) and os.path.isfile(spec.path)):
        raise UserError(f"suite {spec.name!r}: path {spec.path!r} must be the absolute path of an existing TOML file "
                        "(e.g. str(Path(__file__).parent / 'my_suite.toml'))")
    if isinstance(spec, Spec) and not (isinstance(spec.params, type) and issubclass(spec.params, Params)):
        raise UserError(f"{kind} {spec.name!r}: params must be a subclass of harness.Params, got {spec.params!r}")
    if isinstance(spec, EncoderSpec) and spec.published_selection not in PUBLISHED_SELECTIONS:
        raise UserError(f"encoder {spec.name!r}: published_selection {spec.published_selection!r} is not one of "
                        f"{', '.join(map(repr, PUBLISHED_SELECTIONS))}")
    return spec


def all_specs() -> dict[PluginKind, dict[str, Spec]]:
    return _collected()[0]


def specs(kind: PluginKind) -> dict[str, Spec]:
    return all_specs()[kind]


def owner(kind: PluginKind, name: str) -> str:
    """The plugin that registered `name`."""
    get(kind, name)
    return _collected()[1][kind, name]


def plugin_specs(plugin: str) -> dict[PluginKind, dict[str, Spec]]:
    """The specs one plugin registered, by kind."""
    known = [name for name, _ in plugin_manager().list_name_plugin()]
    if plugin not in known:
        error = unknown_name("plugin", plugin, known)
        failure = next((failure for failure in all_broken() if failure.name == plugin), None)
        if failure:
            raise UserError(f"{error} It is broken: {failure.error}.")
        if any(entry_point.name == plugin for entry_point in _loaded().excluded):
            raise UserError(f"{error} It is installed, but {LOAD_VARIABLE} leaves it out; add {plugin!r} to it or "
                            "unset it.")
        raise error
    owners = _collected()[1]
    return {kind: {name: spec for name, spec in table.items() if owners[kind, name] == plugin}
            for kind, table in all_specs().items()}


def get(kind: PluginKind, name: str, where: str = "") -> Spec:
    table = specs(kind)
    if name in table:
        return table[name]
    error = unknown_name(kind, name, list(table), where)
    reason = _why_missing(kind, name)
    raise UserError(f"{error} {reason}".strip()) if reason else error


def _why_missing(kind: PluginKind, name: str) -> str:
    """Where a missing name would have come from: a broken plugin, or one MI_HARNESS_LOAD_PLUGINS leaves out."""
    for failure in all_broken():
        if (kind, name) in failure.names:
            return f"It comes from plugin {failure.name!r}, which is broken: {failure.error}."
    for entry_point in _loaded().excluded:
        if (kind, name) in _offered_by(entry_point):
            return (f"It comes from the installed plugin {entry_point.name!r}, which {LOAD_VARIABLE} leaves out; "
                    f"add {entry_point.name!r} to {LOAD_VARIABLE} or unset it.")
    unknown = [failure.name for failure in all_broken() if not failure.names]
    if unknown:
        return f"Broken plugin(s) {', '.join(map(repr, unknown))} were skipped and may provide it."
    return ""


@cache
def _offered_by(entry_point: importlib.metadata.EntryPoint) -> frozenset[tuple[str, str]]:
    """The (kind, name) pairs an excluded plugin would register, read in a private plugin manager."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    offered: set[tuple[str, str]] = set()
    try:
        pm.register(entry_point.load(), name=entry_point.name)
        for hook in HOOKS.values():
            getattr(pm.hook, hook)(register=lambda spec: offered.add((spec.kind, spec.name)))
    except Exception:  # noqa: BLE001 - only a hint; a failing excluded plugin offers nothing
        pass
    return frozenset(offered)


def add_commands(group: Any) -> None:
    """Let each plugin add its commands to the click `group` (register_commands), each plugin isolated:
    one that raises, or would replace a command that exists, adds nothing and is reported broken."""
    state = _loaded()
    for name, plugin in state.pm.list_name_plugin():
        implementation = getattr(plugin, "register_commands", None)
        if not (callable(implementation) and hasattr(implementation, _MARK)):
            continue
        before = dict(group.commands)
        try:
            implementation(cli=group)
            taken = [command for command in before if group.commands[command] is not before[command]]
            if taken:
                raise UserError(f"it adds command {taken[0]!r}, which exists already")
        except Exception as error:  # noqa: BLE001 - a third party's hook may raise anything
            group.commands.clear()
            group.commands.update(before)
            state.command_failures.append(BrokenPlugin(name, state.sources.get(name, "registered at run time"),
                                                       _reason(error)))


def all_broken() -> list[BrokenPlugin]:
    """Plugins left out at import (a bad entry point), at registration (a failing hook) or while adding commands."""
    state = _loaded()
    return [*state.broken, *_collected()[2], *state.command_failures]


def problems() -> list[str]:
    """One sentence per broken plugin and per MI_HARNESS_LOAD_PLUGINS name that is not installed."""
    lines = [failure.line() for failure in all_broken()]
    installed = [entry_point.name for entry_point in _entry_points()]
    for name in _loaded().not_installed:
        if name in BUILTIN_PLUGINS:
            lines.append(f"{LOAD_VARIABLE} names the built-in plugin {name!r}; built-ins always load, so name "
                         "only installed plugins there.")
            continue
        close = difflib.get_close_matches(name, installed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        lines.append(f"{LOAD_VARIABLE} names {name!r}, which is not installed.{hint} Installed plugins: "
                     f"{', '.join(installed) or 'none'}.")
    return lines


def warn_about_problems() -> None:
    """For the Python API: each problem as a warning, once per process."""
    for line in problems():
        if line not in _warned:
            _warned.add(line)
            warnings.warn(line, PluginWarning, stacklevel=3)


class PluginWarning(UserWarning):
    """A plugin was left out (broken, or named but not installed)."""


_UNVERSIONED = {"plugin file": "file", "registered at run time": "runtime"}  # plugins with no distribution


def plugins() -> list[dict[str, object]]:
    """Each plugin with its version, the hooks it implements, and whether it is built in or broken."""
    pm = plugin_manager()
    state = _loaded()
    broken = {failure.name: failure for failure in all_broken()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        version = state.versions.get(name) or _UNVERSIONED.get(state.sources.get(name, ""), harness_version())
        rows.append({"name": name, "version": version, "hooks": hooks,
                     "builtin": name in BUILTIN_PLUGINS, "status": "broken" if name in broken else "ok",
                     "error": broken[name].error if name in broken else ""})
    for failure in state.broken:
        rows.append({"name": failure.name, "version": state.versions.get(failure.name, ""), "hooks": [],
                     "builtin": False, "status": "broken", "error": failure.error})
    return rows


def _reason(error: BaseException) -> str:
    """Why a plugin is broken: our own checks' sentence as it is, anything else with its type and place."""
    return str(error) if isinstance(error, UserError) else describe_exception(error)


def _exclude_hint(failure: BrokenPlugin) -> str:
    if failure.source == "built-in":
        return "Fix what the error names."
    if not failure.source.startswith("entry point"):
        return "Fix it, or stop registering it."
    broken = {other.name for other in all_broken()}
    working = [name for name, source in _loaded().sources.items()
               if source.startswith("entry point") and name not in broken]
    return f"To leave it out, set {LOAD_VARIABLE}={','.join(working)!r} or uninstall it."
