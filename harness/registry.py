"""One PluginManager: the built-ins and the installed entry points, registered the same way."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from functools import cache

import pluggy

from harness import hookspecs
from harness.api import Kind, Spec
from harness.errors import UserError, unknown_name

ENTRY_POINT_GROUP = "mi_harness"
BUILTIN_PLUGINS = (
    "plugins.estimators.variational",
    "plugins.estimators.nonneural",
    "plugins.tasks",
    "plugins.datasets.graphs",
    "plugins.datasets.vision_series",
    "plugins.encoders.graphs",
    "plugins.encoders.dim_cpc",
    "plugins.suites",
)
HOOKS = {
    "estimator": "register_estimators",
    "task": "register_tasks",
    "encoder": "register_encoders",
    "dataset": "register_datasets",
    "suite": "register_suites",
}


_plugin_files: list[str] = []


def harness_version() -> str:
    """The installed version, or 'source' when run from a checkout on PYTHONPATH (e.g. a bare GPU box)."""
    try:
        return importlib.metadata.version("mi-harness")
    except importlib.metadata.PackageNotFoundError:
        return "source"


@cache
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for module in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module), name=module)
    allowed = os.environ.get("MI_HARNESS_LOAD_PLUGINS")
    if allowed is None:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    else:
        for name in filter(None, (p.strip() for p in allowed.split(","))):
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    return pm


def register(plugin: object, name: str | None = None) -> None:
    """Register a plugin object at run time (a test fixture, a notebook, a plugin file)."""
    plugin_manager().register(plugin, name=name)
    all_specs.cache_clear()


def unregister(name: str) -> None:
    plugin_manager().unregister(name=name)
    if name in _plugin_files:
        _plugin_files.remove(name)
    all_specs.cache_clear()


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
    spec.loader.exec_module(module)
    register(module, name=path)
    _plugin_files.append(path)


@cache
def all_specs() -> dict[Kind, dict[str, Spec]]:
    pm = plugin_manager()
    found: dict[Kind, dict[str, Spec]] = {kind: {} for kind in HOOKS}
    owners: dict[tuple[str, str], str] = {}
    for kind, hook in HOOKS.items():
        for impl in getattr(pm.hook, hook).get_hookimpls():
            def collect(spec: Spec, _kind=kind, _owner=impl.plugin_name) -> None:
                if spec.kind != _kind:
                    raise UserError(f"plugin {_owner!r} registered a {spec.kind} from its {HOOKS[_kind]} hook.")
                if spec.name in found[_kind]:
                    raise UserError(
                        f"{_kind} {spec.name!r} is registered twice: by {owners[(_kind, spec.name)]!r} "
                        f"and by {_owner!r}. Uninstall one, or limit MI_HARNESS_LOAD_PLUGINS."
                    )
                found[_kind][spec.name] = spec
                owners[(_kind, spec.name)] = _owner

            impl.function(register=collect)
    return found


def specs(kind: Kind) -> dict[str, Spec]:
    return all_specs()[kind]


def get(kind: Kind, name: str, where: str = "") -> Spec:
    table = specs(kind)
    if name not in table:
        raise unknown_name(kind, name, list(table), where)
    return table[name]


def plugins() -> list[dict[str, object]]:
    """Each registered plugin with its version and the hooks it implements."""
    pm = plugin_manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        dist = dists.get(id(plugin))
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        version = dist.version if dist else harness_version()
        rows.append({"name": name, "version": version, "hooks": hooks, "builtin": name in BUILTIN_PLUGINS})
    return rows
