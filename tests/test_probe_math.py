"""The probe's mathematics: task generator, LSA = GD identities, references and their tuning, metrics."""

from __future__ import annotations

import pytest
import torch

from iclx.errors import ConfigError
from iclx.models.lsa import LinearSelfAttention
from iclx.models.regression_gpt import RegressionGPT
from iclx.probes.constructed import gd_lsa, one_gd_step_lsa
from iclx.probes.metrics import mean_cosine, query_sensitivities, relative_error
from iclx.probes.references import (
    Statistics, averaging, gd, gd_plus_plus, line_search, ols, preconditioned_gd, ridge, tune_gd, tuned_references,
)
from iclx.probes.tasks import LinearRegressionProbe, stream_generator


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: a second thread only adds contention (the probe stage runs on one too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tasks(d=4, n=12, count=64, seed=0, dtype=torch.float64, **kwargs):
    return LinearRegressionProbe(d=d, n=n, **kwargs).sample(count, stream_generator(seed, "test"), dtype)


# --- tasks ---------------------------------------------------------------------------------------


def test_tasks_are_noise_free_linear_and_seeded():
    batch = tasks(d=3, n=7, count=5)
    assert batch.xs.shape == (5, 7, 3) and batch.ys.shape == (5, 7) and batch.xq.shape == (5, 3)
    torch.testing.assert_close(batch.ys, torch.einsum("bnd,bd->bn", batch.xs, batch.theta), rtol=0, atol=1e-12)
    torch.testing.assert_close(batch.yq, (batch.xq * batch.theta).sum(-1), rtol=0, atol=1e-12)
    again = tasks(d=3, n=7, count=5)
    assert torch.equal(batch.xs, again.xs) and torch.equal(batch.yq, again.yq)
    other = LinearRegressionProbe(d=3, n=7).sample(5, stream_generator(0, "eval"), torch.float64)
    assert not torch.equal(batch.xs, other.xs)  # the streams of one seed are independent


def test_uniform_inputs_and_label_noise():
    batch = tasks(d=3, n=50, count=400, x_dist="uniform", x_range=2.0, noise_std=0.5)
    assert batch.xs.abs().max() <= 2.0 and batch.xs.abs().max() > 1.9
    assert abs(float(batch.xs.var()) - 4.0 / 3.0) < 0.05  # var of U[-2, 2] is 4/3
    residual = batch.ys - torch.einsum("bnd,bd->bn", batch.xs, batch.theta)
    assert abs(float(residual.std()) - 0.5) < 0.02


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"d": 0}, "probe.d must be >= 1, got 0"),
        ({"x_range": -1.0}, "probe.x_range must be > 0, got -1.0"),
        ({"noise_std": -0.1}, "probe.noise_std must be >= 0, got -0.1"),
    ],
)
def test_bad_task_settings_are_one_line(kwargs, message):
    with pytest.raises(ConfigError) as error:
        LinearRegressionProbe(**kwargs)
    assert str(error.value) == message


# --- the LSA computes GD -------------------------------------------------------------------------


def test_constructed_lsa_equals_one_gd_step():
    batch = tasks(d=10, n=10, count=512, dtype=torch.float32)
    eta = 0.4321
    lsa = one_gd_step_lsa(10, eta)
    expected = gd(Statistics.of(batch.to(torch.float64)), [eta])[:, 0]
    predicted = lsa(batch).double()
    assert float((predicted - expected).abs().max()) < 1e-5 * float(expected.abs().max())
    assert relative_error(predicted, expected) < 1e-6


def test_constructed_lsa_equals_k_gd_steps_layer_by_layer():
    batch = tasks(d=5, n=20, count=256)
    steps = [0.3, 0.9, 1.6]
    readouts = gd_lsa(5, steps, torch.float64).layer_predictions(batch)
    torch.testing.assert_close(readouts, gd(Statistics.of(batch), steps), rtol=1e-10, atol=1e-10)


def test_sparse_p_lsa_layers_are_preconditioned_gd_with_its_own_preconditioners():
    torch.manual_seed(0)
    batch = tasks(d=4, n=9, count=128)
    lsa = LinearSelfAttention(d=4, layers=3, init_std=0.3).double()
    expected = preconditioned_gd(Statistics.of(batch), list(lsa.preconditioners().detach()))
    torch.testing.assert_close(lsa.layer_predictions(batch).detach(), expected, rtol=1e-10, atol=1e-10)


def test_shared_weights_reuse_one_matrix():
    lsa = LinearSelfAttention(d=3, layers=4, shared=True)
    assert lsa.key_query.shape == (1, 3, 3)
    gammas = lsa.preconditioners()
    assert gammas.shape == (4, 3, 3) and torch.equal(gammas[0], gammas[3])


def test_full_p_lsa_with_isotropic_weights_is_gd_plus_plus():
    batch = tasks(d=4, n=16, count=128)
    etas, gammas = [0.5, 1.2], [0.3, 0.1]
    lsa = LinearSelfAttention(d=4, layers=2, full_p=True).double()
    eye = torch.eye(4, dtype=torch.float64)
    with torch.no_grad():
        lsa.key_query.copy_(torch.stack([-eta * eye for eta in etas]))
        lsa.value_x.copy_(torch.stack([gamma / eta * eye for eta, gamma in zip(etas, gammas)]))
    assert lsa.preconditioners() is None  # full-P layers are not plain GD steps
    expected = gd_plus_plus(Statistics.of(batch), etas, gammas)
    torch.testing.assert_close(lsa.layer_predictions(batch).detach(), expected, rtol=1e-10, atol=1e-10)


# --- references ----------------------------------------------------------------------------------


def test_reference_identities():
    stats = Statistics.of(tasks(d=4, n=12, count=128))
    torch.testing.assert_close(gd(stats, [1.0]), averaging(stats))  # averaging = one step with eta 1
    scalar = [torch.tensor(0.7, dtype=torch.float64)] * 3
    torch.testing.assert_close(preconditioned_gd(stats, scalar), gd(stats, [0.7] * 3))
    torch.testing.assert_close(gd_plus_plus(stats, [0.7] * 3, [0.0] * 3), gd(stats, [0.7] * 3))
    # noise-free with n > d: least squares and vanishing ridge recover y_q exactly
    torch.testing.assert_close(ols(stats)[:, 0], stats.yq)
    torch.testing.assert_close(ridge(stats, 1e-10)[:, 0], stats.yq, rtol=1e-6, atol=1e-6)


def test_ols_interpolates_with_fewer_examples_than_dimensions():
    batch = tasks(d=8, n=3, count=32)
    stats = Statistics.of(batch)
    theta = torch.linalg.pinv(batch.xs) @ batch.ys.unsqueeze(-1)
    torch.testing.assert_close(ols(stats)[:, 0], (theta.squeeze(-1) * batch.xq).sum(-1))


def test_line_search_finds_the_minimum_of_a_log_scale_function():
    assert line_search(lambda v: (v - 0.37) ** 2, 1e-3, 10.0) == pytest.approx(0.37, rel=1e-6)


def test_tuned_one_step_matches_theory_for_gaussian_inputs():
    """eta* = n / (n + d + 1) for x ~ N(0, I) (the 1/n-normalised step; see tasks.optimal_one_step)."""
    probe = LinearRegressionProbe(d=10, n=10)
    tune = Statistics.of(probe.sample(16384, stream_generator(0, "tune"), torch.float64))
    eta = tune_gd(tune, 1).params["eta"][0]
    assert probe.optimal_one_step() == pytest.approx(10 / 21)
    assert eta == pytest.approx(10 / 21, rel=0.02)


def test_tuned_references_order_and_per_step_schedule():
    probe = LinearRegressionProbe(d=5, n=20)
    tune = Statistics.of(probe.sample(8192, stream_generator(0, "tune"), torch.float64))
    evaluation = Statistics.of(probe.sample(4096, stream_generator(0, "eval"), torch.float64))
    refs = {(r.name, r.steps): r for r in tuned_references(tune, evaluation, steps=3)}
    assert set(refs) == {("zero", 0), ("averaging", 0), ("gd", 1), ("gd", 2), ("gd", 3), ("gd_per_step", 3),
                         ("gd++", 3), ("precond_gd", 3), ("ridge", 0), ("ols", 0)}
    assert refs[("zero", 0)].loss > refs[("gd", 1)].loss > refs[("gd", 2)].loss > refs[("gd", 3)].loss
    # tuning each step pays: steps grow (ascending by construction) and the loss drops well below constant GD
    etas = refs[("gd_per_step", 3)].params["eta"]
    assert etas == sorted(etas) and etas[-1] > 1.5 * etas[0]
    assert refs[("gd_per_step", 3)].loss < 0.7 * refs[("gd", 3)].loss
    assert refs[("precond_gd", 3)].loss < 1.05 * refs[("gd_per_step", 3)].loss
    assert refs[("gd++", 3)].loss < 0.1 * refs[("gd_per_step", 3)].loss
    assert refs[("gd_per_step", 3)].step_losses[-1] == refs[("gd_per_step", 3)].loss


# --- metrics and the GPT ---------------------------------------------------------------------------


def test_sensitivities_of_gd_are_its_weights():
    stats = Statistics.of(tasks(d=4, n=12, count=16))
    sensitivities = query_sensitivities(lambda xq: gd(stats.with_query(xq), [0.5, 0.5])[:, -1], stats.xq)
    # two steps from 0: theta_1 = 0.5 b, theta_2 = theta_1 + 0.5 (b - C theta_1)
    b, c = stats.correlation, stats.second_moment
    theta = 0.5 * b + 0.5 * (b - 0.5 * (c @ b.unsqueeze(-1)).squeeze(-1))
    torch.testing.assert_close(sensitivities, theta)
    assert mean_cosine(sensitivities, -theta) == pytest.approx(-1.0)


def test_regression_gpt_is_causal_and_reads_every_layer():
    torch.manual_seed(0)
    model = RegressionGPT(d=3, layers=2, width=16, heads=2, max_examples=8).eval()
    batch = tasks(d=3, n=5, count=4, dtype=torch.float32)
    assert model.layer_predictions(batch).shape == (4, 2)
    before = model._read_out(model._residual_streams(batch)[-1])
    batch.ys[:, 2] += 3.0  # y_3 may change the predictions for x_4, x_5, x_q only
    after = model._read_out(model._residual_streams(batch)[-1])
    assert torch.equal(before[:, :3], after[:, :3]) and not torch.allclose(before[:, 3:], after[:, 3:])
    with torch.no_grad():
        objective, query_loss = model.training_loss(batch)
        assert float(query_loss) == pytest.approx(float(((model(batch) - batch.yq) ** 2).mean()), rel=1e-5)
    assert float(objective) != float(query_loss)  # the objective averages every position
    with pytest.raises(ConfigError, match=r"probe.n = 8 needs model.max_examples >= 9, got 8"):
        model(tasks(d=3, n=8, count=2, dtype=torch.float32))
