"""Suite files: validation errors that name file, table and field; grid expansion; stable keys."""

import textwrap
from pathlib import Path

import pytest

from harness import registry
from harness.errors import UserError
from harness.suite import load

HEADER = '[suite]\nname = "t"\nseeds = [0, 1]\n'


@pytest.fixture(autouse=True)
def toy(plugin_file):
    registry.load_plugin_file(plugin_file("toy"))
    yield
    registry.unregister(plugin_file("toy"))


def write(tmp_path, body):
    path = tmp_path / "suite.toml"
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def error_of(tmp_path, body):
    with pytest.raises(UserError) as caught:
        load(write(tmp_path, body))
    return str(caught.value)


def test_grid_expands_to_every_combination(tmp_path):
    suite = load(write(tmp_path, """
        [budget]
        samples = [100, 200]
        [[estimators]]
        name = "toy_correlation"
        grid = { sleep_s = [0.0, 0.001] }
        [[tasks]]
        name = "toy_gaussian"
        grid = { rho = [0.1, 0.5, 0.9] }
    """))
    assert len(suite.cells) == 2 * 3 * 2 * 2  # estimator variants x tasks x samples x seeds
    assert len({cell.key for cell in suite.cells}) == len(suite.cells)
    labels = {cell.data_label for cell in suite.cells}
    assert labels == {"toy_gaussian(rho=0.1)", "toy_gaussian(rho=0.5)", "toy_gaussian(rho=0.9)"}


def test_cell_keys_are_stable_across_loads(tmp_path):
    body = '[[estimators]]\nname = "toy_correlation"\n[[tasks]]\nname = "toy_gaussian"\n'
    first = [c.key for c in load(write(tmp_path, body)).cells]
    second = [c.key for c in load(write(tmp_path, body)).cells]
    assert first == second


def test_defaults_are_part_of_the_cell(tmp_path):
    cell = load(write(tmp_path, '[[estimators]]\nname = "toy_correlation"\n[[tasks]]\nname = "toy_gaussian"\n')).cells[0]
    assert cell.data_params == {"dim": 1, "rho": 0.5}
    assert cell.method_params == {"sleep_s": 0.0, "behaviour": "ok"}


def test_unknown_estimator_lists_valid_names_and_suggests(tmp_path):
    message = error_of(tmp_path, '[[estimators]]\nname = "toy_corelation"\n[[tasks]]\nname = "toy_gaussian"\n')
    assert "estimators[0].name" in message and "unknown estimator 'toy_corelation'" in message
    assert "Did you mean 'toy_correlation'?" in message
    assert "toy_correlation" in message.split("Valid estimators:")[1]


def test_wrong_type_names_file_table_and_field(tmp_path):
    message = error_of(tmp_path, """
        [[estimators]]
        name = "toy_correlation"
        [[tasks]]
        name = "toy_gaussian"
        params = { dim = "five" }
    """)
    assert str(tmp_path / "suite.toml") in message
    assert "tasks[0] (toy_gaussian): params.dim" in message and "'five'" in message
    assert "valid params of task 'toy_gaussian': dim=1, rho=0.5." in message


def test_unknown_param_is_refused(tmp_path):
    message = error_of(tmp_path, """
        [[estimators]]
        name = "toy_correlation"
        params = { hiden = 3 }
        [[tasks]]
        name = "toy_gaussian"
    """)
    assert "params.hiden" in message and "Extra inputs are not permitted" in message


def test_bad_budget_points_at_the_field(tmp_path):
    message = error_of(tmp_path, """
        [budget]
        steps = 0
        [[estimators]]
        name = "toy_correlation"
        [[tasks]]
        name = "toy_gaussian"
    """)
    assert "budget.steps" in message and "greater than 0" in message


def test_empty_grid_is_an_error(tmp_path):
    assert "no cells" in error_of(tmp_path, "")


def test_duplicate_entries_are_refused(tmp_path):
    message = error_of(tmp_path, """
        [[estimators]]
        name = "toy_correlation"
        [[estimators]]
        name = "toy_correlation"
        params = { sleep_s = 0.0 }
        [[tasks]]
        name = "toy_gaussian"
    """)
    assert "repeat a cell" in message and "estimators[1]" in message


def test_toml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[suite\nname = 'x'")
    with pytest.raises(UserError, match="broken.toml: not valid TOML"):
        load(path)


def test_missing_suite_names_registered_ones(tmp_path):
    with pytest.raises(UserError, match="unknown suite 'quikstart'"):
        load("quikstart")


def test_call_syntax_builds_nested_params(tmp_path):
    suite = load(write(tmp_path, """
        [[estimators]]
        name = "toy_correlation"
        [[tasks]]
        name = "toy_gaussian(2, rho=0.25)"
    """))
    assert suite.cells[0].data_params == {"dim": 2, "rho": 0.25}
    assert suite.cells[0].data_label == "toy_gaussian(dim=2, rho=0.25)"


@pytest.mark.parametrize("expression, complaint", [
    ("toy_gaussian(dim=__import__('os').getpid())", "expected name(arg, key=value"),
    ("toy_gaussian(dim=1 + 1)", "not a literal value"),
])
def test_call_syntax_is_parsed_never_evaluated(tmp_path, expression, complaint):
    message = error_of(tmp_path, f"""
        [[estimators]]
        name = "toy_correlation"
        [[tasks]]
        name = "{expression}"
    """)
    assert complaint in message


SHIPPED = sorted((Path(__file__).parents[1] / "suites").glob("*.toml")) + sorted(
    (Path(__file__).parent / "benchmarks").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_every_shipped_suite_file_loads_and_expands(path):
    """The built-in suites and the device checks' suites (run only where a GPU is lent) must not rot."""
    suite = load(path)
    assert suite.cells and {cell.seed for cell in suite.cells} == set(suite.source["suite"]["seeds"])
