"""Behaviour of the evaluation figures in lvm.metrics (PROTOCOL section 2)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lvm import metrics as M
from lvm.config import LangevinConfig, ModelConfig
from lvm.langevin import energy
from lvm.models import build_generator

D_LATENT, SIDE = 4, 8


def _gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.RandomState(seed).standard_normal((n, d)) + shift


# ---------------------------------------------------------------- mse
def test_mse_known_values():
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0]]).view(1, 1, 2, 2)
    x_rec = torch.tensor([[0.0, 0.0], [1.0, 0.5]]).view(1, 1, 2, 2)
    assert M.mse(x, x_rec) == pytest.approx((1.0 + 0.25) / 4)
    assert M.mse(np.zeros((3, 1, 4, 4)), np.full((3, 1, 4, 4), 0.5)) == pytest.approx(0.25)
    assert M.mse(x, x) == 0.0
    with pytest.raises(ValueError):
        M.mse(x, x_rec.view(1, 4))


# ---------------------------------------------------------------- latent fit
def test_ot_cost_of_prior_samples_is_at_the_baseline():
    n, d = 500, 2
    baseline = M.prior_baseline_ot_cost(n, d, seed=1)
    cost = M.latent_ot_cost(_gaussian(n, d, seed=5), n=n, seed=1)
    assert 0 < baseline < 0.2
    assert cost == pytest.approx(baseline, rel=0.5)


def test_ot_cost_of_a_shifted_cloud_adds_the_squared_shift():
    n, d = 400, 2
    z = _gaussian(n, d, seed=3)
    base = M.latent_ot_cost(z, n=n, seed=0)
    shift = np.array([3.0, 0.0])
    shifted = M.latent_ot_cost(z + shift, n=n, seed=0)
    # Same subsample and prior sample: the cross term of ||z + m - e||^2 is the same for every matching.
    e = np.random.RandomState(0).standard_normal((n, d))
    exact = base + shift @ shift + 2 * shift @ (z.mean(0) - e.mean(0))
    assert shifted == pytest.approx(exact, rel=1e-9)
    assert shifted == pytest.approx(9 + M.prior_baseline_ot_cost(n, d, seed=0), abs=0.5)


def test_ot_cost_decreases_as_the_cloud_moves_toward_the_prior():
    z = _gaussian(300, 3, seed=7)
    costs = [M.latent_ot_cost(z + t, n=300, seed=2) for t in (3.0, 2.0, 1.0, 0.5, 0.0)]
    assert all(a > b for a, b in zip(costs, costs[1:]))


def test_ot_cost_subsample_is_seeded_and_accepts_tensors_and_a_custom_prior():
    z = torch.from_numpy(_gaussian(3000, 2, seed=0, shift=2.0))
    a, b = M.latent_ot_cost(z, n=200, seed=4), M.latent_ot_cost(z, n=200, seed=4)
    assert a == b
    assert M.latent_ot_cost(z, n=200, seed=5) != a
    shifted_prior = lambda n, d, rs: rs.standard_normal((n, d)) + 2.0  # noqa: E731
    assert M.latent_ot_cost(z, n=200, seed=4, prior=shifted_prior) < 0.5 < a
    with pytest.raises(ValueError):
        M.latent_ot_cost(z[:, 0], n=200)


def test_mmd_hand_computed_case():
    a, b = np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]])
    k = lambda d2: math.exp(-d2 / 2)  # noqa: E731  (bandwidth h = 1)
    expected = k(1) + k(4) - 2 * (k(0) + k(4) + k(1) + k(1)) / 4
    assert M.mmd_rbf(a, b, bandwidths=(1.0,)) == pytest.approx(expected)


def test_mmd_near_zero_for_one_distribution_and_positive_for_a_shift():
    a, b = _gaussian(500, 2, seed=0), _gaussian(500, 2, seed=1)
    same = M.mmd_rbf(a, b)
    assert abs(same) < 0.01
    assert M.mmd_rbf(a, b + 1.0) > 0.1 > 10 * abs(same)
    assert abs(M.latent_mmd(_gaussian(2000, 4, seed=3), n=500)) < 0.01
    assert M.latent_mmd(_gaussian(2000, 4, seed=3, shift=1.0), n=500) > 0.1


# ---------------------------------------------------------------- anomaly AUPRC
def test_auprc_hand_computed_case():
    scores, labels = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
    # PR points (recall, precision): (0, 1) (.5, 1) (.5, .5) (1, 2/3) (1, .5); trapezoids: .5 + 0 + .5 * (.5 + 2/3) / 2
    assert M.auprc(scores, labels) == pytest.approx(19 / 24)
    precision, recall = M.pr_curve(torch.tensor(scores), torch.tensor(labels))
    assert precision[-1] == 1.0 and recall[-1] == 0.0 and recall[0] == 1.0


def test_auprc_chance_and_perfect():
    rs = np.random.RandomState(0)
    labels = (rs.rand(20000) < 0.3).astype(int)
    assert M.auprc(rs.rand(20000), labels) == pytest.approx(labels.mean(), abs=0.02)
    assert M.auprc(labels + 0.1 * rs.rand(20000), labels) == pytest.approx(1.0)


# ---------------------------------------------------------------- Frechet distance
def test_frechet_distance_closed_forms():
    rs = np.random.RandomState(0)
    a = rs.randn(6, 6)
    cov = a @ a.T + np.eye(6)
    mu = rs.randn(6)
    assert M.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    m = np.array([1.0, -2.0, 0.5, 0.0, 3.0, 1.0])
    assert M.frechet_distance(np.zeros(6), np.eye(6), m, np.eye(6)) == pytest.approx(m @ m)
    # 1-D: N(0, 1) vs N(0, 4) -> 1 + 4 - 2 * 2
    assert M.frechet_distance(np.zeros(1), np.eye(1), np.zeros(1), 4 * np.eye(1)) == pytest.approx(1.0)


def test_frechet_distance_survives_singular_covariances():
    f = np.random.RandomState(0).randn(5, 20)  # 5 samples in 20 dims: rank-4 covariances
    value = M.fid_from_features(f, f + 0.01)
    assert math.isfinite(value) and abs(value - 20 * 0.01**2) < 1e-3


def test_frechet_distance_offsets_the_covariances_when_sqrtm_fails(monkeypatch):
    real_sqrtm, calls = M.scipy.linalg.sqrtm, []

    def failing_once(a):
        calls.append(a)
        return np.full_like(a, np.inf) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(M.scipy.linalg, "sqrtm", failing_once)
    with pytest.warns(UserWarning, match="singular"):
        value = M.frechet_distance(np.zeros(3), np.eye(3), np.ones(3), np.eye(3), eps=1e-6)
    assert len(calls) == 2 and np.allclose(calls[1], (1 + 1e-6) ** 2 * np.eye(3))
    assert value == pytest.approx(3.0, abs=1e-5)


def test_fid_from_features_small_for_one_distribution():
    same = M.fid_from_features(_gaussian(4000, 8, 0), _gaussian(4000, 8, 1))
    assert same < 0.05
    assert M.fid_from_features(_gaussian(4000, 8, 0), _gaussian(4000, 8, 1, shift=1.0)) == pytest.approx(8, abs=0.3)


def test_inception_missing_weights_says_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="Nothing is downloaded.*inception_v3_google"):
        M.inception_features(torch.rand(2, 1, 28, 28), tmp_path / "absent.pth")


@pytest.mark.slow
def test_inception_features_from_a_local_weights_file(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    path = tmp_path / "inception.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    grey = torch.rand(1, 1, 28, 28)
    f_grey = M.inception_features(grey, path)
    f_rgb = M.inception_features(grey.expand(-1, 3, -1, -1), path)
    assert f_grey.shape == (1, 2048) and bool(torch.isfinite(f_grey).all())
    assert torch.allclose(f_grey, f_rgb)  # grey images enter as three equal channels


def test_inception_rejects_a_foreign_state_dict(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(ValueError, match="Inception"):
        M.fid_inception(torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28), path)


# ---------------------------------------------------------------- test-time inference
def _linear_generator(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D_LATENT, SIDE * SIDE), nn.Unflatten(1, (1, SIDE, SIDE)))


MAP = LangevinConfig(steps=100, step_size=0.3, sigma=1.0, noise=False)


def test_reconstruct_recovers_images_the_generator_can_make():
    g = _linear_generator()
    with torch.no_grad():
        x = g(torch.randn(64, D_LATENT, generator=torch.Generator().manual_seed(1)))
    z0 = torch.randn(64, D_LATENT, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        start = M.mse(x, g(z0))
    z, x_rec = M.reconstruct(g, x, MAP, rng=torch.Generator().manual_seed(2), batch_size=20)
    assert z.shape == (64, D_LATENT) and x_rec.shape == x.shape and not z.requires_grad
    assert M.mse(x, x_rec) < 0.05 * start
    with torch.no_grad():
        assert torch.allclose(x_rec, g(z))


def test_restarts_keep_the_lowest_energy_chain():
    g = _linear_generator()
    x = torch.rand(30, 1, SIDE, SIDE)
    short = LangevinConfig(steps=2, step_size=0.3, sigma=1.0, noise=False)
    one = M.anomaly_scores(g, x, short, rng=torch.Generator().manual_seed(0))
    three = M.anomaly_scores(g, x, short, rng=torch.Generator().manual_seed(0), restarts=3)
    # The first of the three chains is the single chain (same seed, one batch, no noise).
    assert bool((three <= one + 1e-6).all()) and bool((three < one - 1e-6).any())


def test_anomaly_scores_are_the_energy_at_the_inferred_z():
    g = _linear_generator()
    x = torch.rand(10, 1, SIDE, SIDE)
    cfg = LangevinConfig(steps=10, step_size=0.1, sigma=0.5, noise=True)
    scores = M.anomaly_scores(g, x, cfg, rng=torch.Generator().manual_seed(3))
    z, _ = M.reconstruct(g, x, cfg, rng=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(scores, energy(g, z, x, cfg.sigma))
    again = M.anomaly_scores(g, x, cfg, rng=torch.Generator().manual_seed(3))
    assert torch.equal(scores, again)


def test_generated_images_score_lower_than_noise():
    g = _linear_generator()
    with torch.no_grad():
        normal = g(torch.randn(50, D_LATENT, generator=torch.Generator().manual_seed(1)))
    noise = torch.rand(50, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(2)) * 2 - 1
    s_normal = M.anomaly_scores(g, normal, MAP, rng=torch.Generator().manual_seed(0))
    s_noise = M.anomaly_scores(g, noise, MAP, rng=torch.Generator().manual_seed(0))
    assert s_normal.max() < s_noise.min()
    labels = torch.cat([torch.zeros(50), torch.ones(50)])
    assert M.auprc(torch.cat([s_normal, s_noise]), labels) == pytest.approx(1.0)


def test_reconstruct_reads_the_latent_size_of_project_generators():
    g = build_generator(ModelConfig(latent_dim=3, arch="mlp", width=4))
    x = torch.rand(5, 1, 28, 28)
    z, x_rec = M.reconstruct(g, x, LangevinConfig(steps=2), rng=torch.Generator().manual_seed(0))
    assert z.shape == (5, 3) and x_rec.shape == (5, 1, 28, 28)


def test_q_ot_cost_is_at_the_prior_level_when_the_posterior_is_the_prior_and_far_above_when_it_is_sharp():
    """q(z^K) from noise: a generator with no weight on z leaves p(z | x) = N(0, I), so K Langevin steps keep
    the chains prior-distributed; a sharp likelihood (small sigma) pulls every chain to its own posterior mode."""
    x = torch.rand(300, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    deaf = _linear_generator()
    with torch.no_grad():
        deaf[0].weight.zero_()
    level = M.prior_baseline_ot_cost(300, D_LATENT)
    prior_like = M.q_ot_cost(deaf, x, LangevinConfig(steps=30, step_size=0.3, sigma=1.0))
    assert prior_like == pytest.approx(level, rel=0.5)
    sharp = M.q_ot_cost(_linear_generator(), x, LangevinConfig(steps=30, step_size=0.05, sigma=0.05))
    assert sharp > 3 * level
    assert M.q_ot_cost(deaf, x, LangevinConfig(steps=30, step_size=0.3, sigma=1.0), seed=0) == prior_like  # seeded


def test_q_fit_reads_about_zero_on_the_prior_far_off_it_and_says_whether_z_explain_x():
    """The debiased distance is about 0 (within the estimator's band at n = 300) where q(z^K) is the prior, and far
    above it where it is not; the pixel errors tell a model whose z explain x from one whose z^K is just noise."""
    band = M.prior_band(300, D_LATENT, repeats=8)
    near = lambda v: abs(v) < 3 * band.sd + 0.01  # noqa: E731
    sharp = LangevinConfig(steps=60, step_size=0.02, sigma=0.05)
    g = _linear_generator()
    made = lambda scale: g(scale * torch.randn(300, D_LATENT, generator=torch.Generator().manual_seed(3))).detach()  # noqa: E731
    on = M.q_fit(g, made(1.0), sharp)  # images g makes from prior draws: their posteriors tile the prior
    assert near(on.w2sq) and on.n == 300 and on.mse < 0.01 * on.prior_mse
    off = M.q_fit(g, made(3.0), sharp)  # made from N(0, 9 I): W2^2 to the prior = d (3 - 1)^2 = 16
    assert off.w2sq == pytest.approx(4 * D_LATENT, rel=0.2) and off.mse < 0.01 * off.prior_mse
    noise = M.q_fit(g, made(1.0), LangevinConfig(steps=0, step_size=0.02, sigma=0.05))  # K = 0: z^K is the noise
    assert near(noise.w2sq) and noise.mse > 0.8 * noise.prior_mse
    deaf = _linear_generator()
    with torch.no_grad():
        deaf[0].weight.zero_()
    ignored = M.q_fit(deaf, made(1.0), LangevinConfig(steps=30, step_size=0.3, sigma=1.0))  # p(z | x) = N(0, I)
    assert near(ignored.w2sq) and ignored.mse == pytest.approx(ignored.prior_mse, rel=1e-6)
    assert M.q_fit(g, made(1.0), sharp) == on  # seeded


def test_a_score_does_not_depend_on_the_other_images_of_the_call():
    g = build_generator(ModelConfig(latent_dim=4, arch="mlp", width=8))
    x = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    cfg = LangevinConfig(steps=20, step_size=0.1, sigma=0.3, noise=True)
    together = M.anomaly_scores_per_image(g, x, cfg, seed=7, batch_size=5, restarts=2)
    alone = torch.cat([M.anomaly_scores_per_image(g, x[i:i + 1], cfg, seed=7, restarts=2) for i in range(12)])
    reordered = M.anomaly_scores_per_image(g, x.flip(0), cfg, seed=7, batch_size=12, restarts=2).flip(0)
    # measured here: batched vs alone differ by 8.8e-8 relative (the batched products' rounding), another
    # noise draw by 1.5e-2 (shared generator) and another seed by up to 7.8e-3: rtol 1e-3 sits between them
    assert torch.allclose(together, alone, rtol=1e-3) and torch.allclose(together, reordered, rtol=1e-3)
    # the shared-generator path does depend on its neighbours, and the seed matters
    shared = M.anomaly_scores(g, x[:1], cfg, rng=torch.Generator().manual_seed(7))
    shared_in_batch = M.anomaly_scores(g, x, cfg, rng=torch.Generator().manual_seed(7))[:1]
    assert not torch.allclose(shared, shared_in_batch, rtol=1e-3)
    assert not torch.allclose(together, M.anomaly_scores_per_image(g, x, cfg, seed=8, restarts=2), rtol=1e-3)
    done = []
    M.anomaly_scores_per_image(g, x, cfg, batch_size=5, progress=done.append)
    assert done == [5, 10, 12]
