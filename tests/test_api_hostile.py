"""Careless and hostile calls of `harness.estimate`: each is one short UserError naming the argument.

The corpus below is the issue's list of bad calls (shapes, ranges, types, tensors, values, names,
parameters, devices), each with the word its message must name. No call reaches a fit. The last tests
hand the same bad values to estimators through suite cells: a task that samples NaN fails its cell
before any estimator runs, and the non-neural estimators refuse a constant column themselves.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import harness
from harness import Budget, UserError, registry
from harness.cells import Cell, execute

RNG = np.random.default_rng(0)
X = RNG.standard_normal((50, 2))
Y = X + 0.5 * RNG.standard_normal((50, 2))
MAX_MESSAGE = 300


def with_value(array: np.ndarray, row: int, column: int, value: float) -> np.ndarray:
    out = array.copy()
    out[row, column] = value
    return out


def with_column(array: np.ndarray, column: int, value: float) -> np.ndarray:
    out = array.copy()
    out[:, column] = value
    return out


def grad_tensor() -> torch.Tensor:
    return torch.tensor(X, requires_grad=True)


# (id, call overrides, a word the message must name); "name" overrides the estimator's name.
CORPUS = [
    # shapes
    ("x_zero_columns", {"x": np.zeros((50, 0))}, "x"),
    ("y_zero_columns", {"y": np.zeros((50, 0))}, "y"),
    ("zero_rows", {"x": np.zeros((0, 2)), "y": np.zeros((0, 2))}, "x"),
    ("one_row", {"x": X[:1], "y": Y[:1]}, "x"),
    ("mismatched_rows", {"y": Y[:49]}, "rows"),
    ("x_three_dimensional", {"x": X[:, :, None]}, "x"),
    ("x_scalar", {"x": 3.0}, "x"),
    # the harness's own keywords
    ("steps_negative", {"steps": -1}, "steps"),
    ("steps_zero", {"steps": 0}, "steps"),
    ("steps_float", {"steps": 10.0}, "steps"),
    ("steps_string", {"steps": "100"}, "steps"),
    ("steps_above_the_budget_limit", {"steps": 10**7}, "steps"),
    ("batch_size_zero", {"batch_size": 0}, "batch_size"),
    ("batch_size_one", {"batch_size": 1}, "batch_size"),
    ("batch_size_bool", {"batch_size": True}, "batch_size"),
    ("seed_2_63", {"seed": 2**63}, "seed"),
    ("seed_negative", {"seed": -1}, "seed"),
    ("seed_bool", {"seed": True}, "seed"),
    ("seed_float", {"seed": 1.5}, "seed"),
    ("seed_none", {"seed": None}, "seed"),
    ("threads_zero", {"threads": 0}, "threads"),
    ("threads_negative", {"threads": -2}, "threads"),
    # tensors
    ("tensor_requires_grad", {"x": "grad_tensor"}, "x"),
    ("tensor_complex", {"x": torch.tensor(X, dtype=torch.complex64)}, "x"),
    ("tensor_on_meta_device", {"x": torch.empty((50, 2), device="meta")}, "x"),
    ("tensor_sparse", {"y": torch.tensor(Y).to_sparse()}, "y"),
    # not numbers
    ("x_string", {"x": "abc"}, "x"),
    ("x_numeric_strings", {"x": [str(v) for v in X[:, 0]]}, "x"),
    ("x_bytes", {"x": b"0123456789"}, "x"),
    ("x_ragged_list", {"x": [[1.0, 2.0], [3.0]] * 25}, "x"),
    ("x_none", {"x": None}, "x"),
    ("y_none", {"y": None}, "y"),
    ("x_dict", {"x": {"a": X[:, 0]}}, "x"),
    ("x_set", {"x": set(range(50))}, "x"),
    ("x_generator", {"x": (v for v in X[:, 0])}, "x"),
    ("x_complex", {"x": X + 1j}, "x"),
    ("x_object_array", {"x": np.array([1.0, "a"] * 25, dtype=object)}, "x"),
    ("x_datetimes", {"x": np.arange(50).astype("datetime64[s]")}, "x"),
    ("x_timedeltas", {"x": np.arange(50).astype("timedelta64[s]")}, "x"),
    # values
    ("nan_in_x", {"x": with_value(X, 3, 1, np.nan)}, "x"),
    ("inf_in_y", {"y": with_value(Y, 7, 0, np.inf)}, "y"),
    ("minus_inf_in_x", {"x": with_value(X, 0, 0, -np.inf)}, "x"),
    ("constant_column_in_x", {"x": with_column(X, 1, 2.5)}, "x"),
    ("constant_y", {"y": np.ones(50)}, "y"),
    # names and parameters
    ("unknown_estimator", {"name": "infonse"}, "estimator"),
    ("estimator_name_none", {"name": None}, "name"),
    ("estimator_name_number", {"name": 3}, "name"),
    ("estimator_name_huge", {"name": "a" * 1_000_000}, "name"),
    ("unknown_parameter", {"kk": 3}, "kk"),
    ("mistyped_seed_keyword", {"sed": 1}, "seed"),
    ("mistyped_batch_size_keyword", {"batchsize": 32}, "batch_size"),
    ("parameter_of_wrong_type", {"k": "three"}, "k"),
    ("choice_of_wrong_type", {"metric": 5}, "metric"),
    ("parameter_out_of_range", {"k": 0}, "k"),
    ("huge_parameter_value", {"metric": "m" * 100_000}, "metric"),
    ("lr_inf", {"name": "infonce", "lr": float("inf")}, "lr"),
    ("alpha_nan", {"name": "interpolated", "alpha": float("nan")}, "alpha"),
    ("ridge_inf", {"name": "gaussian_cca", "ridge": float("inf")}, "ridge"),
    # devices
    ("device_cpu_7", {"device": "cpu:7"}, "device"),
    ("device_tpu", {"device": "tpu"}, "device"),
    ("device_none", {"device": None}, "device"),
    ("device_number", {"device": 3}, "device"),
    ("device_gpu_99", {"device": "cuda:99"}, "device"),
]


def test_the_corpus_covers_the_issues_bad_calls():
    assert len(CORPUS) >= 48
    assert len({case for case, _, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("overrides", "named"), [case[1:] for case in CORPUS], ids=[case[0] for case in CORPUS])
def test_a_bad_call_is_one_short_user_error_naming_the_argument(overrides, named):
    arguments = {"name": "ksg", "x": X, "y": Y, "steps": 2, **overrides}
    arguments = {key: grad_tensor() if isinstance(value, str) and value == "grad_tensor" else value for key, value in arguments.items()}
    name, x, y = arguments.pop("name"), arguments.pop("x"), arguments.pop("y")
    try:
        harness.estimate(name, x, y, **arguments)
    except Exception as error:  # noqa: BLE001 - the point is which type it is
        caught = error
    else:
        pytest.fail("the bad call was accepted")
    assert isinstance(caught, UserError) and isinstance(caught, ValueError), f"{type(caught).__name__}: {caught}"
    message = str(caught)
    assert re.search(rf"\b{re.escape(named)}\b", message), message
    assert len(message) < MAX_MESSAGE, f"{len(message)} characters: {message[:400]}"


def test_a_parameter_typo_gets_the_did_you_mean_and_the_parameters_names():
    with pytest.raises(UserError, match=r"unknown key 'kk'. Did you mean 'k'\?.*the parameters of 'ksg': k, metric"):
        harness.estimate("ksg", X, Y, kk=3)


def test_a_non_finite_parameter_is_refused_wherever_params_are_read():
    spec = registry.get("estimator", "infonce")
    with pytest.raises(ValueError, match="finite"):
        spec.params(lr=float("inf"))
    with pytest.raises(ValueError, match="finite"):
        registry.get("task", "gaussian").params(mi=float("inf"))


def test_good_calls_still_run_detached_tensors_and_integer_arrays_included():
    value = harness.estimate("ksg", torch.tensor(X), Y).value
    assert value == pytest.approx(harness.estimate("ksg", X, Y).value)
    assert np.isfinite(harness.estimate("gaussian_cca", (X * 10).astype(np.int64), Y, device="cpu:0").value)


# ---------------------------------------------------------------- the same values through suite cells


@pytest.fixture
def faulty(plugin_file):
    registry.load_plugin_file(plugin_file("faulty"))
    yield
    registry.unregister(plugin_file("faulty"))


@pytest.mark.parametrize("method", ["ksg", "infonce"])
def test_a_task_that_samples_nan_fails_its_cell_before_any_estimator(faulty, method):
    # faulty_gaussian's nan_samples puts NaN in every 7th row of x: 72 of 500.
    cell = Cell("hostile", "estimation", method, {}, "faulty_gaussian", {"behaviour": "nan_samples"}, 0, 500,
                Budget(steps=5, batch_size=16), "cpu", method, "faulty_gaussian")
    result = execute(cell)
    assert result.status == "failed" and result.estimate is None
    assert "task 'faulty_gaussian' sampled 72 non-finite value(s) (NaN or inf) in x" in result.error
    assert "bound" not in result.error


@pytest.mark.parametrize("method", ["ksg", "gaussian_cca", "histogram"])
def test_the_non_neural_estimators_refuse_a_constant_column_as_a_suite_hands_it_to_them(method):
    estimator = registry.get("estimator", method).instantiate({})
    for x, y, side in ((with_column(X, 1, 3.0), Y, "x"), (X, np.zeros(50), "y")):
        with pytest.raises(UserError, match=rf"^{side}: column\(s\) \[\d\] are constant"):
            estimator.fit_estimate(x, y, Budget(), "cpu", 0)
