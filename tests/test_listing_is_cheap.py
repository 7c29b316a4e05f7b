"""`mi-harness list` imports no torch: plugins register torch-free specs and build them lazily.

Each listing runs in a fresh interpreter, as `harness.cli.main` does it (plugins' commands added
first), and then looks at what was imported. How fast listing is belongs to benchmarks, not here.
"""

import subprocess
import sys
import textwrap

import pytest

from harness import registry

HEAVY = ("torch", "sklearn")

LIST_AND_REPORT_IMPORTS = textwrap.dedent("""
    import contextlib, io, sys
    from harness import cli, registry
    sys.argv = ["mi-harness", "list", *sys.argv[1:]]
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        registry.add_commands(cli.cli)
        cli.cli.main(standalone_mode=False)
    assert shown.getvalue(), "the listing printed nothing"
    print("imported:", *(name for name in {heavy!r} if name in sys.modules))
""").format(heavy=HEAVY)


def imported_after(*args: str, code: str = LIST_AND_REPORT_IMPORTS) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout.splitlines()[-1].split()[1:]


@pytest.mark.parametrize("what", ["", "estimators", "tasks", "encoders", "datasets", "suites", "plugins",
                                  "--format json", "--format markdown", "estimators --format json",
                                  "plugins --format markdown", "estimators infonce", "estimators infonce --format json",
                                  "estimators infonce --format markdown", "suites quickstart", "encoders dgi"])
def test_listing_imports_no_torch(what):
    assert imported_after(*what.split()) == []


def test_the_catalogue_the_docs_import_imports_no_torch():
    code = ("import sys\nfrom harness import catalogue\nassert catalogue.markdown()\n"
            f"print('imported:', *(name for name in {HEAVY!r} if name in sys.modules))")
    assert imported_after(code=code) == []


@pytest.mark.parametrize("module", registry.BUILTIN_PLUGINS)
def test_builtin_plugin_registers_without_torch(module):
    code = textwrap.dedent(f"""
        import importlib, sys
        import click
        plugin = importlib.import_module({module!r})
        for hook in ("register_estimators", "register_tasks", "register_encoders", "register_datasets",
                     "register_suites"):
            getattr(plugin, hook, lambda register: None)(register=lambda spec: None)
        getattr(plugin, "register_commands", lambda cli: None)(cli=click.Group())
        print("imported:", *(name for name in {HEAVY!r} if name in sys.modules))
    """)
    assert imported_after(code=code) == []


@pytest.mark.parametrize("kind", ["estimator", "task", "encoder", "dataset"])
def test_every_lazy_build_names_a_builder(kind):
    # A typo in a "module:attr" string would otherwise show only when a suite builds that spec.
    for name, spec in registry.specs(kind).items():
        if isinstance(spec.build, str):
            assert callable(spec.builder()), f"{kind} {name!r}: {spec.build} is not callable"
