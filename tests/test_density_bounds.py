"""The upper-bound, generative and hybrid estimators (CLUB, CLUB-sample, L1Out, Barber-Agakov, DoE, GM, FLO),
their density models, the entropy hand-off and the learned-PMI accuracy, against analytic Gaussians.

The bound tests plug the exact conditional (or the true densities, or the true PMI) into the bounds: each value is
then a mean over pairs whose expectation is known, and the tolerance is K_SE standard errors of that mean over
independent batches. The trained estimators are checked against the truth within their own 95% interval widened
by the modelling error measured once over seeds 0-4 (written beside each test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import harness
from harness import Budget, registry
from harness.cells import Cell, Prepared, _pmi_accuracy, prepare
from harness.errors import UserError
from harness.store import Store
from plugins.estimators import bounds, objectives
from plugins.estimators.densities import Autoregressive, ConditionalCritic, GaussianHead, LikelihoodCritic

K_SE = 4.0
RHO, DIM = 0.8, 2
MI = -DIM / 2 * math.log(1 - RHO**2)  # 1.022 nats
CLUB_EXACT = DIM * RHO**2 / (1 - RHO**2)  # 3.556 nats: CLUB with the exact conditional (MATH.md)


def gaussian_batches(batches: int, b: int, seed: int, rho: float = RHO, dim: int = DIM) -> tuple[torch.Tensor, ...]:
    """(batches, b, dim) x and y, each coordinate pair a standard bivariate normal with correlation rho."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batches, b, dim, generator=g, dtype=torch.float64)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(batches, b, dim, generator=g, dtype=torch.float64)
    return x, y


def exact_log_q(x: torch.Tensor, y: torch.Tensor, rho: float = RHO, slope: float = 1.0) -> torch.Tensor:
    """log q(y_j | x_i) for q = N(slope rho x, 1 - rho^2) per coordinate (slope 1: the exact conditional)."""
    var = 1 - rho**2
    diff = y.unsqueeze(-3) - slope * rho * x.unsqueeze(-2)
    return (-0.5 * diff.square() / var - 0.5 * math.log(2 * math.pi * var)).sum(-1)


def true_pmi(x: torch.Tensor, y: torch.Tensor, rho: float = RHO) -> torch.Tensor:
    """(..., B, B): pmi(x_i, y_j) of the Gaussian pairs."""
    normal = -0.5 * y.unsqueeze(-3).square() - 0.5 * math.log(2 * math.pi)
    return exact_log_q(x, y, rho) - normal.sum(-1)


def assert_mean_within(per_batch: torch.Tensor, truth: float, k: float = K_SE) -> None:
    stderr = float(per_batch.std()) / math.sqrt(len(per_batch))
    assert abs(float(per_batch.mean()) - truth) < k * stderr, (float(per_batch.mean()), truth, stderr)


class TestBoundsWithTheExactConditional:
    def test_club_equals_d_rho2_over_1_minus_rho2_which_is_above_the_mi(self):
        x, y = gaussian_batches(200, 256, seed=0)
        values = bounds.club_bound(exact_log_q(x, y))
        assert_mean_within(values, (1 - 1 / 256) * CLUB_EXACT)  # its negatives include the diagonal
        assert CLUB_EXACT > MI

    def test_club_sample_has_club_s_expectation(self):
        x, y = gaussian_batches(400, 256, seed=1)
        assert_mean_within(bounds.club_sample_bound(exact_log_q(x, y)), CLUB_EXACT)

    def test_l1out_is_at_or_above_the_mi(self):
        x, y = gaussian_batches(200, 256, seed=2)
        values = bounds.l1out_bound(exact_log_q(x, y))
        stderr = float(values.std()) / math.sqrt(len(values))
        assert float(values.mean()) > MI - K_SE * stderr

    def test_l1out_is_never_below_infonce_on_the_same_critic_by_more_than_log_b_over_b_minus_1(self):
        # MATH.md said "L1Out - InfoNCE(same critic) <= log B on every batch"; that is false (the next test), and
        # what holds on every batch and row is L1Out >= InfoNCE - log(B / (B - 1)), InfoNCE normalising over x.
        for seed in range(5):
            scores = torch.randn(8, 64, 64, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 5
            gap = bounds.l1out_bound(scores) - bounds.infonce_bound(scores.mT)
            assert bool((gap >= -math.log(64 / 63) - 1e-12).all()), gap.min()

    def test_the_gap_to_infonce_exceeds_log_b_at_high_mi(self):
        x, y = gaussian_batches(4, 64, seed=3, rho=0.999, dim=10)  # I = 31 nats, far above log 64
        log_q = exact_log_q(x, y, rho=0.999)
        gap = bounds.l1out_bound(log_q) - bounds.infonce_bound(log_q.mT)
        assert bool((gap > math.log(64)).all()), gap

    def test_barber_agakov_with_the_exact_conditional_gives_the_mi(self):
        x, y = gaussian_batches(200, 256, seed=4)
        entropy_y = DIM * 0.5 * math.log(2 * math.pi * math.e)
        values = objectives.BarberAgakov(entropy_y).value(exact_log_q(x, y))
        assert_mean_within(values, MI)

    def test_barber_agakov_with_any_other_conditional_gives_less(self):
        x, y = gaussian_batches(200, 256, seed=5)
        entropy_y = DIM * 0.5 * math.log(2 * math.pi * math.e)
        for slope in (0.5, 1.3):
            values = objectives.BarberAgakov(entropy_y).value(exact_log_q(x, y, slope=slope))
            stderr = float(values.std()) / math.sqrt(len(values))
            assert float(values.mean()) < MI - K_SE * stderr, slope


class TestEstimatesWithTheTrueDensities:
    def test_difference_of_entropies_with_the_true_densities_gives_the_mi(self):
        x, y = gaussian_batches(200, 256, seed=6)
        log_q_y_given_x = exact_log_q(x, y).diagonal(dim1=-2, dim2=-1)
        log_q_y = (-0.5 * y.square() - 0.5 * math.log(2 * math.pi)).sum(-1)
        columns = torch.stack([log_q_y_given_x, log_q_y], dim=-1)
        _, value = objectives.DifferenceOfEntropies()(columns, x, y)
        assert_mean_within(value, MI)

    def test_generative_mi_with_the_true_densities_gives_the_mi(self):
        x, y = gaussian_batches(200, 256, seed=7)
        covariance = np.block([[np.eye(DIM), RHO * np.eye(DIM)], [RHO * np.eye(DIM), np.eye(DIM)]])
        z = torch.cat([x, y], dim=-1).numpy()
        joint = torch.from_numpy(stats.multivariate_normal(np.zeros(2 * DIM), covariance).logpdf(z))
        marginal = stats.multivariate_normal(np.zeros(DIM), np.eye(DIM))
        columns = torch.stack([joint, torch.from_numpy(marginal.logpdf(x.numpy())),
                               torch.from_numpy(marginal.logpdf(y.numpy()))], dim=-1)
        _, value = objectives.GenerativeMI()(columns, x, y)
        assert_mean_within(value, MI)

    def test_flo_with_the_true_pmi_and_u_minus_g_gives_the_mi(self):
        x, y = gaussian_batches(200, 256, seed=8)
        g = true_pmi(x, y)
        values = bounds.flo_bound(g, -g.diagonal(dim1=-2, dim2=-1))
        assert_mean_within(values, MI)

    def test_flo_with_another_critic_stays_below_the_mi_and_is_not_capped_at_log_b(self):
        x, y = gaussian_batches(200, 64, seed=9)
        g = true_pmi(x, y)
        for critic, u in ((0.5 * g, -0.5 * g.diagonal(dim1=-2, dim2=-1)),
                          (g, torch.zeros(200, 64, dtype=torch.float64))):
            values = bounds.flo_bound(critic, u)
            stderr = float(values.std()) / math.sqrt(len(values))
            assert float(values.mean()) < MI + K_SE * stderr
        x, y = gaussian_batches(50, 64, seed=10, rho=0.99, dim=5)  # I = 9.8 nats > log 64 = 4.16
        g = true_pmi(x, y, rho=0.99)
        high = bounds.flo_bound(g, -g.diagonal(dim1=-2, dim2=-1))
        assert float(high.mean()) > math.log(64) + 2


class TestDensityModels:
    def test_pairwise_log_prob_agrees_with_the_aligned_one_and_with_scipy(self):
        torch.manual_seed(0)
        head = GaussianHead(3, 2, 16, 2, "elu", components=3).double()
        context, target = torch.randn(1, 5, 3, dtype=torch.float64), torch.randn(1, 5, 2, dtype=torch.float64)
        pairwise = head.pairwise_log_prob(context, target)
        torch.testing.assert_close(pairwise.diagonal(dim1=-2, dim2=-1), head.log_prob(context, target))
        log_weights, means, log_scales = head.mixture(context[0, :1])
        mixture = sum(math.exp(float(log_weights[0, k].detach())) * stats.multivariate_normal(
            means[0, k].detach().numpy(), np.diag(np.exp(2 * log_scales[0, k].detach().numpy()))).pdf(target[0, 3])
            for k in range(3))
        assert float(pairwise[0, 0, 3].detach()) == pytest.approx(math.log(mixture), rel=1e-9)

    def test_an_autoregressive_density_integrates_to_one(self):
        torch.manual_seed(1)
        density = Autoregressive(0, 2, 16, 2, "tanh", components=2).double()
        grid = torch.linspace(-12, 12, 801, dtype=torch.float64)
        z = torch.cartesian_prod(grid, grid).unsqueeze(0)
        with torch.no_grad():
            mass = density.log_prob(None, z).exp().sum() * (grid[1] - grid[0]) ** 2
        assert float(mass) == pytest.approx(1.0, abs=1e-3)

    def test_the_density_critics_stack_into_groups(self):
        from plugins.estimators.critics import stack_critics
        for critic_class in (ConditionalCritic, LikelihoodCritic):
            members = []
            for seed in (0, 1):
                torch.manual_seed(seed)
                members.append(critic_class(2, 3, 8, 2, 0, "elu"))
            grouped = stack_critics(members)
            x, y = torch.randn(2, 6, 2), torch.randn(2, 6, 3)
            alone = torch.cat([m(x[g:g + 1], y[g:g + 1]) for g, m in enumerate(members)])
            torch.testing.assert_close(grouped(x, y), alone)


def gaussian_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = gaussian_batches(1, n, seed)
    return x[0].numpy(), y[0].numpy()


class TestTrainedEstimators:
    """harness.estimate at its defaults on 4000 pairs of the 2-d Gaussian (I = 1.022): the interval (the held-out
    sampling error) widened by `model` nats, the modelling error of each estimator over seeds 0-4."""

    @pytest.mark.parametrize(("name", "model"), [("doe", 0.05), ("gm", 0.08), ("flo", 0.08), ("l1out", 0.08)])
    def test_estimates_cover_the_mi(self, name, model):
        x, y = gaussian_pairs(4000, seed=11)
        estimate = harness.estimate(name, x, y)
        low, high = estimate.interval
        assert low - model < MI < high + model, (estimate.value, estimate.interval)
        assert estimate.pmi is not None and len(estimate.pmi[0]) == len(estimate.pmi[1]) > 0

    @pytest.mark.parametrize("name", ["club", "club_sample"])
    def test_club_lies_above_the_mi(self, name):
        x, y = gaussian_pairs(4000, seed=12)
        estimate = harness.estimate(name, x, y)
        assert estimate.interval[0] > MI, estimate
        assert estimate.diagnostics["bound"] == "upper"

    def test_mixture_heads_fit_a_bimodal_conditional_better_than_one_gaussian(self):
        # y = x + s with s = +-2 by a coin and small noise: p(y|x) is two-peaked, so one Gaussian per x misses it
        rng = np.random.default_rng(16)
        x = rng.standard_normal((4000, 1))
        y = x + 2.0 * rng.choice([-1.0, 1.0], size=(4000, 1)) + 0.3 * rng.standard_normal((4000, 1))
        one, three = (harness.estimate("club", x, y, components=k, marginals="raw") for k in (1, 3))
        assert three.criterion > one.criterion + 0.3, (one.criterion, three.criterion)  # held-out log-likelihood

    def test_barber_agakov_with_the_marginal_entropy(self):
        x, y = gaussian_pairs(4000, seed=13)
        entropy_y = DIM * 0.5 * math.log(2 * math.pi * math.e)
        estimate = harness.estimate("ba", x, y, entropy_y=entropy_y)
        low, high = estimate.interval
        assert low - 0.08 < MI < high + 0.08, estimate

    def test_barber_agakov_without_an_entropy_names_doe(self):
        x, y = gaussian_pairs(1000, seed=14)
        with pytest.raises(UserError, match="doe"):
            harness.estimate("ba", x, y)

    def test_barber_agakov_refuses_an_entropy_with_normal_scores(self):
        with pytest.raises(UserError, match="raw"):
            harness.estimate("ba", *gaussian_pairs(1000, seed=15), entropy_y=1.0, marginals="gaussianize")


def estimation_cell(method: str, task: str, preprocess: str = "none", **task_params) -> Cell:
    return Cell(suite="t", study="estimation", method=method, method_params={}, data=task, data_params=task_params,
                seed=0, n=2000, budget=Budget(steps=50, batch_size=128), device="cpu", method_label=method,
                data_label=task, preprocess=preprocess)


class TestEntropyHandOff:
    def test_gaussian_entropies_agree_with_scipy(self):
        task = registry.get("task", "multinormal_dense").instantiate({"dim_x": 2, "dim_y": 3, "correlation": 0.4})
        for side, block in (("x", slice(0, 2)), ("y", slice(2, 5))):
            scipy_entropy = stats.multivariate_normal(cov=task.covariance[block, block]).entropy()
            assert task.entropy(side) == pytest.approx(scipy_entropy, rel=1e-12)

    def test_a_standardised_cell_hands_ba_the_entropy_of_the_standardised_y(self):
        prepared = prepare(estimation_cell("ba", "multinormal_dense", preprocess="standardize", dim_x=2, dim_y=2))
        _, y_raw = prepared.raw(np.arange(prepared.cell.n))
        expected = prepared.task.entropy("y") - np.log(y_raw.std(axis=0)).sum()
        assert prepared.estimator.params.entropy_y == pytest.approx(expected, rel=1e-12)

    def test_a_discrete_y_gets_no_entropy(self):
        prepared = prepare(estimation_cell("ba", "noisy_channel"))
        assert prepared.estimator.needs_entropy


class TestLearnedPMIAccuracy:
    def prepared(self) -> Prepared:
        return prepare(estimation_cell("infonce", "multinormal_dense", preprocess="standardize", dim_x=2, dim_y=2))

    def test_the_true_pmi_scores_zero_and_an_offset_scores_the_offset(self):
        prepared = self.prepared()
        rows = np.arange(1000, 1500)
        truth = prepared.task.log_density_ratio(*prepared.raw(rows))
        for offset in (0.0, 0.3):
            metrics, diagnostics = _pmi_accuracy(prepared, harness.Estimate(value=0.0, pmi=(rows, truth + offset)))
            assert metrics["pmi_rmse"] == pytest.approx(offset, abs=1e-9)
            assert len(diagnostics["pmi_pairs"]) == 200

    def test_a_trained_critic_stores_its_pmi_rmse(self, tmp_path):
        suite = tmp_path / "pmi.toml"
        suite.write_text('[suite]\nname = "pmi"\nseeds = [0]\n[budget]\nsamples = [2000]\nsteps = 200\n'
                         'batch_size = 128\n[[estimators]]\nname = "infonce"\n[[estimators]]\nname = "club"\n'
                         '[[tasks]]\nname = "multinormal_dense(2, 2, 0.5)"\n')
        harness.run_suite(suite, store=tmp_path / "s.sqlite", jobs=1)
        store = Store(tmp_path / "s.sqlite")
        cells = store.cells(store.latest_run())
        ok = cells[cells["status"] == "ok"]
        assert len(ok) == 2
        for metrics in ok["metrics"]:
            # the PMI of this task has sd about 0.9 nats; a critic that learned nothing scores about that
            assert 0 < metrics["pmi_rmse"] < 0.6, metrics


class TestLearnedPMIAtTheOptimum:
    """Each rule's learned_pmi, fed the critic its bound is optimal at, gives back the true PMI: the normalisers
    over B = 1000 pairs of a 1-d Gaussian (I = 0.14) err by about sqrt(chi^2 / B) ~ 0.02 nats."""

    RHO = 0.5

    def batch(self):
        x, y = gaussian_batches(4, 1000, seed=20, rho=self.RHO, dim=1)
        return x, y, true_pmi(x, y, rho=self.RHO)

    def assert_recovers(self, objective, scores, x, y, pmi):
        learned = objective.learned_pmi(scores, x, y)
        rmse = float((learned - pmi.diagonal(dim1=-2, dim2=-1)).square().mean().sqrt())
        assert rmse < 0.05, (type(objective).__name__, rmse)

    @pytest.mark.parametrize(("objective", "critic"), [
        (objectives.NWJ(), lambda pmi, x, y: 1 + pmi),
        (objectives.JS(), lambda pmi, x, y: pmi),
        (objectives.NCE(), lambda pmi, x, y: pmi),
        (objectives.MINE(), lambda pmi, x, y: pmi + 3.0),
        (objectives.SMILE(), lambda pmi, x, y: pmi + 3.0),
        (objectives.InfoNCE(), lambda pmi, x, y: pmi + 2 * x),  # known up to a function of x (rows)
        (objectives.FLO(1, 1), lambda pmi, x, y: pmi + 2 * x),
        (objectives.Interpolated(1), lambda pmi, x, y: pmi + 2 * y.mT),  # up to a function of y (columns)
    ])
    def test_a_critic_rule_recovers_the_pmi_from_its_optimal_critic(self, objective, critic):
        x, y, pmi = self.batch()
        self.assert_recovers(objective, critic(pmi, x, y).double(), x, y, pmi)

    def test_tuba_recovers_the_pmi_after_its_own_baseline(self):
        x, y, pmi = self.batch()
        tuba = objectives.TUBA(1).double()
        with torch.no_grad():
            scores = pmi + tuba.log_baseline(y).squeeze(-1).unsqueeze(-2)  # S_ij = pmi + log a(y_j)
            self.assert_recovers(tuba, scores, x, y, pmi)

    def test_the_conditional_and_likelihood_rules_recover_the_pmi_from_the_true_densities(self):
        x, y, pmi = self.batch()
        log_q = exact_log_q(x, y, rho=self.RHO)
        self.assert_recovers(objectives.CLUB(), log_q, x, y, pmi)
        marginal = (-0.5 * y.square() - 0.5 * math.log(2 * math.pi)).sum(-1)
        columns = torch.stack([log_q.diagonal(dim1=-2, dim2=-1), marginal], dim=-1)
        self.assert_recovers(objectives.DifferenceOfEntropies(), columns, x, y, pmi)
