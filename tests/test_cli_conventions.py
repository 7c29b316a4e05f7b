"""The command line's conventions: `runs`, the most recent run by default, whole plugin pages, --format.

A real store is made once by running a tiny suite of the toy plugin (tests/plugin_files/toy.py): its
estimator succeeds, returns NaN or raises on request, so each run has cells ok, nonfinite and failed.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import click
import pytest

from harness import catalogue, cli, registry

TOY_PLUGIN = str(Path(__file__).parent / "plugin_files" / "toy.py")

TOY_SUITE = """
    suite = {{ name = "toy", seeds = {seeds} }}
    budget = {{ samples = [128] }}
    tasks = [{{ name = "toy_gaussian" }}]
    estimators = [{{ name = "toy_correlation" }},
                  {{ name = "toy_correlation", label = "toy_nan", params = {{ behaviour = "nan" }} }},
                  {{ name = "toy_correlation", label = "toy_raise", params = {{ behaviour = "raise" }} }}]
"""


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    """Run 'first' (2 seeds: 6 cells), then run 'second' (1 seed: 3 cells), then 'first' again retrying
    its failed cells a second later: 'first' is then the run most recently written to."""
    folder = tmp_path_factory.mktemp("conventions")
    store = str(folder / "toy.sqlite")
    two_seeds, one_seed = folder / "two_seeds.toml", folder / "one_seed.toml"
    two_seeds.write_text(textwrap.dedent(TOY_SUITE.format(seeds="[0, 1]")))
    one_seed.write_text(textwrap.dedent(TOY_SUITE.format(seeds="[0]")))
    run = ["--plugin-file", TOY_PLUGIN, "run", "--store", store, "--no-report"]
    mi_harness(*run, str(two_seeds), "--run", "first")
    mi_harness(*run, str(one_seed), "--run", "second")
    time.sleep(1.1)  # the store's times have whole seconds
    mi_harness(*run, str(two_seeds), "--run", "first", "--retry-failed")
    return store


def test_runs_counts_each_runs_cells_ok_failed_and_nonfinite(toy_store):
    rows = json.loads(mi_harness("runs", "--store", toy_store, "--format", "json").stdout)
    assert [(row["run"], row["suite"], row["ok"], row["failed"], row["nonfinite"]) for row in rows] == [
        ("first", "toy", 2, 2, 2), ("second", "toy", 1, 1, 1)]
    first, second = rows
    assert first["started"] <= second["started"] <= second["finished"] < first["finished"]


def test_runs_as_a_table_and_as_markdown(toy_store):
    table = mi_harness("runs", "--store", toy_store).stdout
    assert "first" in table and "second" in table and "nonfinite" in table and "started (UTC)" in table
    markdown = mi_harness("runs", "--store", toy_store, "--format", "markdown").stdout.splitlines()
    assert markdown[0] == "| run | suite | ok | failed | nonfinite | started | finished |"
    assert markdown[2].startswith("| first | toy | 2 | 2 | 2 | ") and len(markdown) == 4


def test_export_without_run_takes_the_run_most_recently_written_to(toy_store):
    result = mi_harness("export", "--store", toy_store, "--format", "json")
    assert f"using the most recent run 'first' (of 2) in {toy_store}" in result.stderr
    assert len(json.loads(result.stdout)) == 6
    named = mi_harness("export", "second", "--store", toy_store, "--format", "json")
    assert len(json.loads(named.stdout)) == 3 and "most recent" not in named.stderr


def test_report_without_run_takes_the_most_recent_run(toy_store, tmp_path):
    result = mi_harness("report", "--store", toy_store, "--reports-dir", str(tmp_path))
    assert "using the most recent run 'first' (of 2)" in result.stderr
    assert (tmp_path / "toy" / "first" / "index.html").is_file()


def test_a_store_without_runs_says_so_in_one_sentence(tmp_path):
    from harness.store import Store

    Store(tmp_path / "empty.sqlite").close()
    empty = str(tmp_path / "empty.sqlite")
    assert f"no runs in {empty} yet." in mi_harness("runs", "--store", empty).stdout
    for command in ("report", "export"):
        result = mi_harness(command, "--store", empty, check=False)
        assert result.returncode == 2 and f"there are no runs in {empty} yet" in result.stdout, command
        assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("kind", ["estimator", "task", "encoder", "dataset"])
def test_every_entrys_page_shows_every_parameter_as_its_params_declare_it(kind):
    for name, spec in registry.specs(kind).items():
        page = catalogue.entry(kind, name)
        assert page["plugin"] == registry.owner(kind, name) and page["summary"] == spec.summary
        assert page["cite"] == spec.cite and set(page["published"]) == set(spec.published)
        fields = spec.params.model_fields
        assert [row["name"] for row in page["parameters"]] == list(fields), name
        for row in page["parameters"]:
            info = fields[row["name"]]
            assert row["required"] == info.is_required() and row["choices"] == spec.params.choices(row["name"])
            assert row["description"] == (info.description or "")
            if not row["required"]:
                assert row["default"] == info.get_default(call_default_factory=True)


def test_estimator_page_on_the_command_line():
    out = mi_harness("list", "estimators", "infonce").stdout
    spec = registry.get("estimator", "infonce")
    assert spec.summary in out and spec.cite in out and "plugins.estimators.variational" in out
    for field in spec.params.model_fields:
        assert field in out, field
    assert "'separable' | 'concat' | 'bilinear'" in out and "int > 0" in out


def test_pages_show_descriptions_published_numbers_and_suite_files():
    described = next((kind, name, info.description) for kind in ("task", "estimator", "encoder", "dataset")
                     for name, spec in sorted(registry.specs(kind).items())
                     for info in spec.params.model_fields.values() if info.description)
    plural = catalogue.plural(described[0])
    assert described[2] in mi_harness("list", plural, described[1]).stdout
    dgi = mi_harness("list", "encoders", "dgi").stdout
    assert "published on cora: 82.3 ± 0.6" in dgi
    quickstart = mi_harness("list", "suites", "quickstart").stdout
    assert registry.get("suite", "quickstart").path in quickstart and "estimators: infonce" in quickstart


def test_an_unknown_name_gets_did_you_mean():
    result = mi_harness("list", "estimators", "infonc", check=False)
    assert result.returncode == 2 and "Did you mean 'infonce'?" in result.stdout and "Valid estimators:" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_list_json_is_one_document_keyed_by_kind():
    everything = json.loads(mi_harness("list", "--format", "json").stdout)
    assert list(everything) == list(catalogue.KINDS)
    for plural, kind in catalogue.KINDS.items():
        assert [row["name"] for row in everything[plural]] == sorted(registry.specs(kind))
    estimators = json.loads(mi_harness("list", "estimators", "--format", "json").stdout)
    assert estimators == everything["estimators"]
    page = json.loads(mi_harness("list", "estimators", "infonce", "--format", "json").stdout)
    assert page == next(row for row in estimators if row["name"] == "infonce")
    plugins = json.loads(mi_harness("list", "plugins", "--format", "json").stdout)
    assert {"plugins.suites", "plugins.tasks"} <= {row["name"] for row in plugins}


def test_list_markdown_is_the_catalogue_the_docs_import():
    shown = mi_harness("list", "--format", "markdown").stdout
    imported = python("from harness.catalogue import markdown; print(markdown(), end='')")
    assert shown == imported
    for plural, kind in catalogue.KINDS.items():
        count = len(registry.specs(kind))
        assert f"## {plural.capitalize()}\n\n{count} {plural if count != 1 else kind}.\n" in shown
    assert "### infonce" in shown and "| parameter | type | default | choices | description |" in shown
    page = mi_harness("list", "estimators", "infonce", "--format", "markdown").stdout
    assert page.startswith("# infonce\n") and "| `critic` | str | `'separable'` |" in page


def test_markdown_shows_text_literally_and_keeps_table_columns():
    row = catalogue.table(["a", "b", "c"], [[catalogue.text("x | *y* <z> half_cube {0, 1}"), catalogue.code("1|2"),
                                             catalogue.text("- not a list")]])
    assert row.splitlines()[2] == r"| x \| \*y\* &lt;z&gt; half\_cube \{0, 1\} | 1\|2 | \- not a list |"


def test_list_plugins_takes_no_name():
    result = mi_harness("list", "plugins", "infonce", check=False)
    assert result.returncode == 2 and "takes no NAME" in result.stdout


def test_every_option_of_the_core_commands_has_help():
    for name, command in cli.cli.commands.items():
        for option in command.params:
            if isinstance(option, click.Option):
                assert option.help, f"mi-harness {name} {option.opts[0]} has no help text"


def mi_harness(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The command line in a fresh process, 200 columns wide so that tables fold no value."""
    result = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert not check or result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=True).stdout
