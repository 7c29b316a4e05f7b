"""Claims of MATH.md's f-divergence table, one parametrized test per claim over every row.

Ground truth: P = N(mu, s^2), Q = N(0, 1), where int p^a q^(1-a) has a closed form, so KL, reverse
KL, Pearson, Neyman, Hellinger, Jeffrey and alpha are exact; TV and the two JS rows come from
their integral forms by quadrature, written here independently of the rows' f.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.special
import torch
from scipy.stats import norm

from harness.errors import UserError
from plugins.estimators import bounds
from plugins.estimators.divergences import (
    DIVERGENCE_NAMES,
    Divergence,
    Interval,
    divergence,
    parse_target,
    target_name,
    wrightomega,
)

ALPHAS = (-1.0, 0.5, 2.0)  # alpha < 0, 0 < alpha < 1, alpha > 1
ROWS = [(name, None) for name in DIVERGENCE_NAMES if name != "alpha"] + [("alpha", a) for a in ALPHAS]
IDS = [target_name(name, alpha) for name, alpha in ROWS]
MU, S = 0.5, 0.95  # s near 1 keeps enough moments of r finite for the Monte-Carlo standard errors
K_SE = 4.0


@pytest.fixture(params=ROWS, ids=IDS)
def row(request: pytest.FixtureRequest) -> Divergence:
    return divergence(*request.param)


def log_ratio(x: np.ndarray) -> np.ndarray:
    return norm.logpdf(x, MU, S) - norm.logpdf(x)


def power_integral(a: float) -> float:
    """int N(x; mu, s^2)^a N(x; 0, 1)^(1-a) dx, finite when lambda = a / s^2 + 1 - a > 0."""
    lam = a / S**2 + 1.0 - a
    return S**-a * lam**-0.5 * math.exp(a**2 * MU**2 / (2 * S**4 * lam) - a * MU**2 / (2 * S**2))


def quad(fn) -> float:
    value, _ = scipy.integrate.quad(fn, -20.0, 20.0, limit=400, epsabs=1e-12, epsrel=1e-10, points=[MU])
    return value


def known_divergence(d: Divergence) -> float | None:
    """D_f(P || Q) from its closed form or integral form, independent of the row's code; None for a new row."""
    kl = math.log(1 / S) + (S**2 + MU**2) / 2 - 0.5
    reverse_kl = math.log(S) + (1 + MU**2) / (2 * S**2) - 0.5
    p, q = (lambda x: norm.pdf(x, MU, S)), norm.pdf
    js = quad(lambda x: 0.5 * scipy.special.xlogy(p(x), 2 * p(x) / (p(x) + q(x)))
              + 0.5 * scipy.special.xlogy(q(x), 2 * q(x) / (p(x) + q(x))))
    closed = {
        "kl": kl,
        "reverse_kl": reverse_kl,
        "jeffrey": kl + reverse_kl,
        "pearson": power_integral(2.0) - 1.0,
        "neyman": power_integral(-1.0) - 1.0,
        "hellinger": 2.0 - 2.0 * power_integral(0.5),
        "tv": quad(lambda x: 0.5 * abs(p(x) - q(x))),
        "js": js,
        "gan_js": 2.0 * js - math.log(4.0),
    }
    if d.name == "alpha":
        return (power_integral(d.alpha) - 1.0) / (d.alpha * (d.alpha - 1.0))
    return closed.get(d.name)


def true_divergence(d: Divergence) -> float:
    """The known value, or for a row without one int q f(p/q) by quadrature (independent of the f-GAN path)."""
    known = known_divergence(d)
    return known if known is not None else quad(lambda x: norm.pdf(x) * d.f(np.exp(log_ratio(x))))


def test_wrightomega_matches_scipy() -> None:
    z = np.concatenate([np.linspace(-745.0, 745.0, 30001), [-40.0, -39.9, 0.0, 1.0 - 1e-9, 1.0, 1.0 + 1e-9, 1e6]])
    ours = wrightomega(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(ours, scipy.special.wrightomega(z), rtol=1e-13, atol=0)
    z32 = np.linspace(-80.0, 80.0, 4001)
    ours32 = wrightomega(torch.from_numpy(z32).float()).numpy()
    np.testing.assert_allclose(ours32, scipy.special.wrightomega(z32.astype(np.float32)), rtol=1e-6)


def test_wrightomega_gradient_is_w_over_one_plus_w() -> None:
    z = torch.linspace(-60.0, 60.0, 25, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(wrightomega, (z,))


def test_f_vanishes_at_one_except_the_gan_row(row: Divergence) -> None:
    expected = -math.log(4.0) if row.name == "gan_js" else 0.0
    assert row.f(np.array([1.0]))[0] == pytest.approx(expected, abs=1e-15)


def test_f_prime_is_the_derivative_of_f(row: Divergence) -> None:
    u = np.exp(np.linspace(-3.0, 3.0, 41))
    u = u[np.abs(u - 1.0) > 1e-3]  # TV has a kink at 1
    h = 1e-6 * u
    numeric = (row.f(u + h) - row.f(u - h)) / (2 * h)
    np.testing.assert_allclose(row.f_prime(u), numeric, rtol=1e-6, atol=1e-8)


def test_f_integral_matches_the_closed_form(row: Divergence) -> None:
    """int q f(p/q) with this row's f equals the divergence it names (f is the task library's ground truth)."""
    known = known_divergence(row)
    assert known is not None, f"no closed form for {row.target}: add it to known_divergence"
    integral = quad(lambda x: norm.pdf(x) * row.f(np.exp(log_ratio(x))))
    assert integral == pytest.approx(known, rel=1e-7, abs=1e-10)


def test_conjugate_satisfies_fenchel_young_equality_at_the_slope(row: Divergence) -> None:
    """f*(f'(u)) = u f'(u) - f(u): the supremum defining f* is attained at u."""
    u = np.exp(np.linspace(-4.0, 4.0, 33))
    t = torch.from_numpy(row.f_prime(u))
    np.testing.assert_allclose(row.conjugate(t).numpy(), u * row.f_prime(u) - row.f(u), rtol=1e-9, atol=1e-12)


def numerical_conjugate(row: Divergence, t: float) -> tuple[float, float]:
    """sup_{u > 0} (t u - f(u)) and its maximiser: dense grid in log u, then bounded Brent (concave in u)."""
    log_u = np.linspace(-30.0, 30.0, 6001)
    with np.errstate(all="ignore"):
        values = t * np.exp(log_u) - row.f(np.exp(log_u))
    k = int(np.nanargmax(values))
    lo, hi = log_u[max(k - 1, 0)], log_u[min(k + 1, len(log_u) - 1)]
    res = scipy.optimize.minimize_scalar(lambda s: -(t * math.exp(s) - row.f(np.array([math.exp(s)]))[0]),
                                         bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    best = max(-res.fun, values[k])
    return best, math.exp(res.x)


def test_conjugate_matches_numerical_supremum(row: Divergence) -> None:
    """On t = g(v), v in [-4, 4]: f*(t) >= sup_{u > 0}(t u - f(u)) always (so the f-GAN bound stays a
    lower bound), with equality wherever the supremum is attained inside u > 0. Pearson's conjugate is
    the looser one over all real u for t < -2 (MATH.md), where the supremum sits at u -> 0."""
    for v in np.linspace(-4.0, 4.0, 17):
        t = row.activation(torch.tensor(v, dtype=torch.float64))
        ours = row.conjugate(t).item()
        numeric, u_star = numerical_conjugate(row, t.item())
        tol = 1e-7 * (1.0 + abs(numeric))
        assert ours >= numeric - tol, (t.item(), ours, numeric)
        if math.exp(-25) < u_star < math.exp(25):
            assert ours == pytest.approx(numeric, abs=tol), (t.item(), u_star)


def test_activation_range_lies_in_conjugate_domain(row: Divergence) -> None:
    v = torch.linspace(-30.0, 30.0, 601, dtype=torch.float64)
    assert row.conjugate_domain.contains(row.activation(v)).all()
    assert torch.isfinite(row.conjugate(row.activation(v))).all()
    extreme = torch.tensor([-1e300, -1e6, 1e6, 1e300], dtype=torch.float64)
    closure = Interval(row.conjugate_domain.low, row.conjugate_domain.high, True, True)
    assert closure.contains(row.activation(extreme)).all()


def test_conjugate_of_activation_is_the_composition(row: Divergence) -> None:
    v = torch.linspace(-10.0, 10.0, 201, dtype=torch.float64)
    composed = row.conjugate(row.activation(v))
    torch.testing.assert_close(row.conjugate_of_activation(v), composed, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype,limit", [(torch.float32, 80.0), (torch.float64, 700.0)])
def test_conjugate_of_activation_stays_finite_for_extreme_critic_values(
        row: Divergence, dtype: torch.dtype, limit: float) -> None:
    """Where f*(g(v)) is representable it is computed, with its gradient, without saturating g at
    the edge of dom f* (the plain composition gives inf for JS at v > 37, Hellinger at v < -37)."""
    v = torch.linspace(-limit, limit, 2001, dtype=dtype, requires_grad=True)
    value = row.conjugate_of_activation(v)
    (grad,) = torch.autograd.grad(value.sum(), v)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    assert torch.isfinite(row.activation(v)).all()


def test_conjugate_is_infinite_outside_its_domain(row: Divergence) -> None:
    domain = row.conjugate_domain
    if math.isinf(domain.low) and math.isinf(domain.high):  # nothing lies outside: f* is finite everywhere
        t = torch.tensor([-50.0, -5.0, 0.0, 5.0, 30.0], dtype=torch.float64)
        assert torch.isfinite(row.conjugate(t)).all()
        return
    outside = [x for x in (domain.low - 1.0, domain.high + 1.0) if math.isfinite(x)]
    t = torch.tensor(outside + [0.5 * (max(domain.low, -3.0) + min(domain.high, 3.0))], dtype=torch.float64,
                     requires_grad=True)
    value = row.conjugate(t)
    assert torch.isinf(value[:-1]).all() and torch.isfinite(value[-1])
    (grad,) = torch.autograd.grad(value[-1], t)
    assert torch.isfinite(grad).all()


def test_inverse_activation_inverts_activation(row: Divergence) -> None:
    v = np.linspace(-8.0, 8.0, 81)
    t = row.activation(torch.from_numpy(v)).numpy()
    np.testing.assert_allclose(row.inverse_activation(t), v, rtol=1e-7, atol=1e-7)


def optimal_critic(row: Divergence, x: np.ndarray) -> torch.Tensor:
    with np.errstate(divide="ignore"):  # TV's optimal critic is +-inf
        return torch.from_numpy(row.inverse_activation(row.f_prime(np.exp(log_ratio(x)))))


def test_optimal_critic_recovers_divergence(row: Divergence) -> None:
    """V* = g^{-1}(f'(p/q)) in the f-GAN bound gives D_f: positives from P on the diagonal, Q off it."""
    rng = np.random.default_rng(11)
    batch, batches = 256, 16
    eye = torch.eye(batch, dtype=torch.bool)
    estimates = []
    for _ in range(batches):
        x_p = rng.normal(MU, S, size=batch)
        x_q = rng.normal(0.0, 1.0, size=(batch, batch))
        scores = optimal_critic(row, x_q).masked_scatter(eye, optimal_critic(row, x_p))
        estimates.append(bounds.fgan_bound(scores, row).item())
    mean, se = np.mean(estimates), np.std(estimates, ddof=1) / math.sqrt(batches)
    assert abs(mean - true_divergence(row)) <= K_SE * se, (mean, se, true_divergence(row))


def test_any_critic_gives_at_most_the_divergence(row: Divergence) -> None:
    """Fenchel-Young, pointwise: g(V) r - f*(g(V)) <= f(r), so the population bound never exceeds D_f."""
    p, q = (lambda x: norm.pdf(x, MU, S)), norm.pdf

    def population_bound(shift: float, wiggle: float) -> float:
        def integrand(x: float) -> float:
            with np.errstate(divide="ignore"):
                v = optimal_critic(row, np.array([x])) + shift + wiggle * math.sin(3 * x)
            return p(x) * row.activation(v).item() - q(x) * row.conjugate_of_activation(v).item()

        return quad(integrand)

    truth = true_divergence(row)
    assert population_bound(0.0, 0.0) == pytest.approx(truth, rel=1e-6, abs=1e-9)
    for shift, wiggle in [(0.3, 0.0), (-0.3, 0.0), (0.0, 0.5)]:
        assert population_bound(shift, wiggle) <= truth + 1e-9


def test_gan_js_is_twice_js_minus_log_four() -> None:
    js, gan = divergence("js"), divergence("gan_js")
    u = np.exp(np.linspace(-5.0, 5.0, 101))
    np.testing.assert_allclose(gan.f(u), 2 * js.f(u) - (u + 1) * math.log(2.0), rtol=1e-12, atol=1e-12)


def test_js_objective_is_the_gan_js_bound() -> None:
    scores = 3.0 * torch.randn(10, 10, dtype=torch.float64)
    assert bounds.js_objective(scores).item() == bounds.fgan_bound(scores, divergence("gan_js")).item()


@pytest.mark.parametrize("name,alpha", ROWS, ids=IDS)
def test_target_strings_round_trip(name: str, alpha: float | None) -> None:
    d = parse_target(target_name(name, alpha))
    assert (d.name, d.alpha) == (name, alpha)
    assert d.target == target_name(name, alpha)


@pytest.mark.parametrize(
    "call",
    [
        lambda: divergence("kullback"),
        lambda: divergence("alpha"),
        lambda: divergence("alpha", 1.0),
        lambda: divergence("alpha", 0.0),
        lambda: divergence("kl", 0.5),
        lambda: parse_target("alpha=half"),
        lambda: parse_target("kl=2"),
    ],
)
def test_bad_divergence_names_are_user_errors(call) -> None:
    with pytest.raises(UserError):
        call()


def test_unknown_divergence_lists_the_valid_names() -> None:
    with pytest.raises(UserError) as info:
        divergence("pearsn")
    assert "pearson" in str(info.value) and "reverse_kl" in str(info.value)


def test_every_divergence_name_builds() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, alpha in ROWS:
            assert divergence(name, alpha).name == name
    assert set(DIVERGENCE_NAMES) == {name for name, _ in ROWS}
