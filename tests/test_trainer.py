"""Behaviour of the training loop (lvm.trainer, Alg. 1) on real MNIST digits 0 and 1."""
from __future__ import annotations

import math
import warnings
import threading
from dataclasses import replace

import pytest
import torch

from lvm.checkpoint import CheckpointError
from lvm.config import DataConfig, LangevinConfig, ModelConfig, OTConfig, TrainConfig
from lvm.data import ImageData
from lvm.metrics import latent_ot_cost
from lvm.langevin import Interrupted
from lvm.trainer import GOOD_EVERY, DivergedError, Step, Trainer

MNIST01 = DataConfig(name="mnist", classes=(0, 1), limit=400)  # 4 batches of 100: the `mnist01` fixture
# Settings where the chains drift far from the prior within a few iterations (s = 0.1, K = 20).
BASE = TrainConfig(
    method="ours", alpha=0.5, ot_every=3, batch_size=100, epochs=2, seed=0, checkpoint_every=0,
    data=MNIST01, model=ModelConfig(latent_dim=2, arch="mlp"),
    langevin=LangevinConfig(steps=20, step_size=0.1), ot=OTConfig(solver="exact"))
PAPER_OT = pytest.mark.filterwarnings(r"ignore:OT \(Alg. 2\) stopped:RuntimeWarning")


def _run(cfg: TrainConfig, data: ImageData, steps: int | None = None) -> tuple[Trainer, list[Step]]:
    tr = Trainer(cfg, data)
    return tr, [tr.step() for _ in range(tr.total_iterations if steps is None else steps)]


def _same_state(a: Trainer, b: Trainer) -> None:
    assert a.iteration == b.iteration
    assert torch.equal(a.z, b.z)
    assert torch.equal(a.targets, b.targets)
    for (name, p), q in zip(a.generator.state_dict().items(), b.generator.state_dict().values()):
        assert torch.equal(p, q), name


def test_schedule_counts_iterations(mnist01: ImageData) -> None:
    tr = Trainer(replace(BASE, epochs=1.5), mnist01)
    assert tr.batches_per_epoch == 4 and tr.total_iterations == 6
    seen = torch.cat([tr.batch_indices(i) for i in range(4)])
    assert torch.equal(torch.sort(seen).values, torch.arange(400))  # one epoch visits every image once


@pytest.mark.slow
def test_training_lowers_the_reconstruction_error(mnist01: ImageData) -> None:
    _, recs = _run(replace(BASE, epochs=3), mnist01)
    first = sum(r.metrics.mse for r in recs[:2]) / 2
    last = sum(r.metrics.mse for r in recs[-2:]) / 2
    assert all(math.isfinite(r.metrics.loss) for r in recs)
    assert last < 0.6 * first


@pytest.mark.slow
def test_full_correction_puts_the_population_on_the_prior_sample(mnist01: ImageData) -> None:
    tr, recs = _run(replace(BASE, alpha=1.0), mnist01, steps=3)
    c = recs[-1].correction
    assert c is not None and recs[-1].metrics.chain_fit is not None and recs[0].correction is None
    assert "ot_cost" in recs[-1].record() and "chain_fit" in recs[-1].record() and "ot_cost" not in recs[0].record()
    before = c.before
    # the exact solver matches everyone: with alpha = 1 the chains now sit on the targets, permuted
    assert c.result.unmatched == 0.0 and not c.skipped
    assert torch.equal(tr.z, tr.targets[c.assignment])
    assert latent_ot_cost(tr.z, 400) < 0.5 * latent_ot_cost(before, 400)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_correction_lowers_the_latent_fit_and_beats_abp(mnist01: ImageData, seed: int) -> None:
    cfg = replace(BASE, seed=seed)
    ours = Trainer(cfg, mnist01)
    corrections = 0
    for _ in range(ours.total_iterations):
        step = ours.step()
        if step.correction is not None:
            corrections += 1
            fit_before = latent_ot_cost(step.correction.before, 400)
            fit_after = latent_ot_cost(ours.z, 400)
            assert fit_after < 0.6 * fit_before  # alpha = 1/2 quarters the matched cost
    assert corrections == 2
    abp, steps = _run(replace(cfg, method="abp", alpha=0.0), mnist01)
    assert all(s.correction is None for s in steps)
    # two iterations after the last correction "ours" still fits the prior far better than ABP
    assert latent_ot_cost(ours.z, 400) < 0.8 * latent_ot_cost(abp.z, 400)


@pytest.mark.slow
@PAPER_OT
def test_same_config_same_result(mnist01: ImageData) -> None:
    cfg = replace(BASE, ot=OTConfig(solver="paper"))
    a, ra = _run(cfg, mnist01, steps=4)
    b, rb = _run(cfg, mnist01, steps=4)
    _same_state(a, b)
    untimed = lambda steps: [{k: v for k, v in r.record().items() if "seconds" not in k} for r in steps]  # noqa: E731
    assert untimed(ra) == untimed(rb)
    c, _ = _run(replace(cfg, seed=1), mnist01, steps=4)
    assert not torch.equal(a.z, c.z)


@pytest.mark.slow
@PAPER_OT
@pytest.mark.parametrize("solver", ["paper", "fast"])
def test_resume_continues_bit_for_bit(mnist01: ImageData, tmp_path, solver: str) -> None:
    # both solvers warm-start from the stored solver state, so the checkpoint must carry it too
    cfg = replace(BASE, ot=OTConfig(solver=solver))
    straight, _ = _run(cfg, mnist01)                              # 8 iterations, corrections at 3 and 6

    first = Trainer(replace(cfg, epochs=1), mnist01)               # 4 iterations, then a checkpoint
    first.fit(checkpoint_path=tmp_path / "ckpt.pt")
    assert first.iteration == 4 and first.ot_warm is not None
    resumed = Trainer.resume(tmp_path / "ckpt.pt", mnist01, epochs=2)
    assert resumed.iteration == 4 and resumed.total_iterations == 8
    resumed.fit()
    _same_state(resumed, straight)
    adam_a, adam_b = (t.optimizer.state_dict()["state"].values() for t in (resumed, straight))
    for p, q in zip(adam_a, adam_b):
        assert torch.equal(p["exp_avg"], q["exp_avg"]) and torch.equal(p["exp_avg_sq"], q["exp_avg_sq"])


def test_resume_refuses_a_different_data_set(mnist01: ImageData, tmp_path) -> None:
    tr = Trainer(BASE, mnist01)
    tr.save(tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match="400 latent chains"):
        Trainer.resume(tmp_path / "ckpt.pt", mnist01.subset(slice(0, 300)))


def test_fit_stops_when_asked(mnist01: ImageData) -> None:
    tr = Trainer(BASE, mnist01)
    stop = threading.Event()
    seen = []

    def callback(step: Step) -> None:
        seen.append(step.metrics.iteration)
        if len(seen) == 2:
            stop.set()
    tr.fit(callback, stop=stop)
    assert seen == [1, 2] and tr.iteration == 2


def test_retune_changes_only_live_settings_and_keeps_the_config_valid(mnist01: ImageData) -> None:
    tr = Trainer(BASE, mnist01)
    cfg = tr.retune(alpha=0.25, steps=5, lr=1e-4)
    assert (cfg.alpha, cfg.langevin.steps, cfg.lr) == (0.25, 5, 1e-4) and tr.cfg is cfg
    assert all(g["lr"] == 1e-4 for g in tr.optimizer.param_groups)
    with pytest.raises(ValueError, match="batch_size cannot change"):
        tr.retune(batch_size=7)
    with pytest.raises(ValueError, match="alpha"):
        tr.retune(alpha=2.0)
    assert tr.cfg is cfg  # a refused retune changes nothing


@pytest.mark.slow
def test_vae_trains_and_lowers_its_loss(mnist01: ImageData) -> None:
    tr, recs = _run(replace(BASE, method="vae", epochs=3), mnist01)
    assert tr.encoder is not None and all(r.correction is None for r in recs)
    first = sum(r.metrics.loss for r in recs[:2]) / 2
    last = sum(r.metrics.loss for r in recs[-2:]) / 2
    assert last < 0.6 * first
    assert not torch.equal(tr.z, tr.targets)  # the population holds the encoder means


def test_divergence_is_reported_with_the_step_size(mnist01: ImageData) -> None:
    # s = 50: the prior drift alone multiplies z by (1 - s^2 / 2) = -1249 per Langevin step
    tr = Trainer(replace(BASE, langevin=LangevinConfig(steps=20, step_size=50.0)), mnist01)
    with pytest.raises(DivergedError, match=r"step size s \(now 50"):
        tr.step()


@pytest.mark.slow
def test_divergence_rolls_back_to_the_last_finite_state(mnist01: ImageData) -> None:
    tr = Trainer(replace(BASE, epochs=100), mnist01)
    for _ in range(GOOD_EVERY + 2):
        tr.step()
    good = tr.good[-1]["latents"].clone()
    tr.retune(step_size=50.0)
    with pytest.raises(DivergedError, match="latents"):
        tr.step()
    assert tr.rollback() == GOOD_EVERY
    assert torch.equal(tr.z, good) and all(torch.isfinite(p).all() for p in tr.generator.parameters())
    tr.retune(step_size=0.1)  # the user lowers s and goes on
    assert math.isfinite(tr.step().metrics.loss) and tr.iteration == GOOD_EVERY + 1


def test_tiny_sigma_with_a_large_rate_is_caught_as_latents_running_away(mnist01: ImageData) -> None:
    # the recipe (s = 6e-2, lr = 1, sigma tiny): finite, but mean z^2 reaches ~1e12 within 60 steps
    tr = Trainer(replace(BASE, lr=1.0, epochs=100, langevin=LangevinConfig(20, 6e-2, sigma=1e-3)), mnist01)
    with pytest.raises(DivergedError, match="running away.*raise sigma"):
        for _ in range(60):
            tr.step()
    assert tr.rollback() % GOOD_EVERY == 0 and float(tr.z.pow(2).mean()) < 100


@pytest.mark.filterwarnings(r"ignore:OT \(auction\) stopped:RuntimeWarning")
def test_an_unconverged_fast_solve_skips_the_correction_and_training_goes_on(mnist01: ImageData) -> None:
    cfg = replace(BASE, ot_every=1, ot=OTConfig(solver="fast", max_iter=1))  # far too few passes to converge
    tr = Trainer(cfg, mnist01)
    with pytest.warns(RuntimeWarning, match="correction is skipped"):
        step = tr.step()
    rec = step.record()
    assert rec["ot_skipped"] == 1.0 and rec["ot_converged"] == 0.0 and step.correction.skipped
    twin = Trainer(replace(cfg, ot_every=1000), mnist01)  # the same iteration with no correction due
    twin.step()
    assert torch.equal(tr.z, twin.z) and not torch.equal(tr.z, tr.targets)


def _after(calls: int):
    """An interrupt that answers True from its `calls`-th question on (a pause pressed mid-iteration)."""
    asked = [0]

    def interrupt() -> bool:
        asked[0] += 1
        return asked[0] >= calls
    return interrupt


@pytest.mark.slow
def test_an_interrupt_during_inference_leaves_the_run_as_it_was(mnist01: ImageData) -> None:
    tr = Trainer(BASE, mnist01)
    tr.step()
    z, params = tr.z.clone(), [p.clone() for p in tr.generator.parameters()]
    with pytest.raises(Interrupted):
        tr.step(interrupt=_after(5))  # 4 of the batch's 20 Langevin steps, then the pause
    assert tr.iteration == 1 and torch.equal(tr.z, z)
    assert all(torch.equal(p, q) for p, q in zip(tr.generator.parameters(), params))
    twin = Trainer(BASE, mnist01)
    twin.step(), twin.step()
    tr.step()  # the iteration then runs as if nothing had happened
    assert torch.equal(tr.z, twin.z)


@pytest.mark.slow
def test_an_interrupt_during_the_correction_skips_it_quietly_and_the_iteration_ends(mnist01: ImageData) -> None:
    cfg = replace(BASE, ot_every=1, ot=OTConfig(solver="fast"))
    tr, twin = Trainer(cfg, mnist01), Trainer(replace(cfg, ot_every=1000), mnist01)
    calls = cfg.langevin.steps + 2  # past the batch's inference, inside the auction
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pause is not a solver fault: no warning
        step = tr.step(interrupt=_after(calls))
    twin.step()
    assert step.correction.skipped and not step.correction.result.converged
    assert step.metrics.q_fit is None and tr.iteration == 1 and tr.ot_warm is None
    assert torch.equal(tr.z, twin.z)  # no Eq. 10: the same state as an iteration with no correction due


@pytest.mark.slow
def test_a_second_rollback_goes_further_back(mnist01: ImageData) -> None:
    tr = Trainer(replace(BASE, epochs=100), mnist01)
    for _ in range(3 * GOOD_EVERY + 1):
        tr.step()
    assert tr.rollback() == 3 * GOOD_EVERY
    assert tr.rollback() == 2 * GOOD_EVERY
    assert tr.rollback() == GOOD_EVERY
    assert tr.rollback() == 0 and tr.rollback() == 0  # the oldest copy is kept: never an empty history


def test_a_due_iteration_records_the_fit_of_the_generator_it_leaves(mnist01: ImageData) -> None:
    """The step's q fields are `q_fit` of the generator after learning, each in its own field (a mutation that
    dropped one value shifted the rest into the wrong fields and no fast test noticed)."""
    tr = Trainer(replace(BASE, q_fit_n=50), mnist01)
    steps = [tr.step() for _ in range(BASE.ot_every)]
    assert all(s.metrics.q_w2sq is None for s in steps[:-1])  # only every L-th iteration measures
    m, q = steps[-1].metrics, tr.q_fit()                       # the same generator and seed: the same numbers
    assert (m.q_fit, m.q_w2sq, m.q_mse, m.q_prior_mse) == (q.ot_cost, q.w2sq, q.mse, q.prior_mse)
    assert m.chains_w2sq is not None and m.chain_fit is not None and m.chains_w2sq != m.q_w2sq


def test_the_optimiser_and_encoder_follow_the_config(mnist01: ImageData) -> None:
    """lr reaches Adam (the default 0.001 would hide a dropped argument) and only the VAE has an encoder."""
    tr = Trainer(replace(BASE, lr=0.02), mnist01)
    assert [g["lr"] for g in tr.optimizer.param_groups] == [0.02] and tr.encoder is None
    vae = Trainer(replace(BASE, method="vae", alpha=None), mnist01)
    assert vae.encoder is not None
    params = {id(p) for g in vae.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in params for p in vae.encoder.parameters())  # the encoder learns too


def test_the_q_fit_images_are_a_seeded_draw_of_the_training_images(mnist01: ImageData) -> None:
    """The images whose q(z^K) is fitted are a fixed draw for a seed (the same every call) and another draw for
    another seed: cfg.seed reaches the generator (a mutant of lvm/trainer.py that dropped it survived)."""
    def images(seed: int) -> torch.Tensor:
        return Trainer(replace(BASE, seed=seed, q_fit_n=50), mnist01).q_images()

    a = images(0)
    assert a.shape == (50, *mnist01.x.shape[1:]) and torch.equal(a, images(0))
    assert not torch.equal(a, images(1))
