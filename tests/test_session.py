"""The live training session (lvm.live.session) on real MNIST digits 0 and 1, with its real thread."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lvm.config import DataConfig, LangevinConfig, ModelConfig, OTConfig, TrainConfig
from lvm.projection import Projection
from lvm.live.levels import RECON_SHARE, mean_prior_fit, on_prior
from lvm.live.session import PAIRS_N, Session
from lvm.live.turns import Turns

CFG = TrainConfig(method="ours", alpha=0.5, ot_every=3, batch_size=100, checkpoint_every=0, seed=0,
                  data=DataConfig("mnist", (0, 1), limit=400), model=ModelConfig(2, "mlp"),
                  langevin=LangevinConfig(steps=10), ot=OTConfig(solver="exact"))


@pytest.fixture
def session():
    s = Session(CFG)
    yield s
    s.stop()


def test_step_runs_exactly_one_iteration_and_pauses(session: Session, wait_until) -> None:
    v = session.view()
    assert (v.state, v.iteration, len(v.frames)) == ("idle", 0, 1)
    session.step()
    wait_until(lambda: session.view().iteration == 1)
    time.sleep(0.3)
    v = session.view()
    assert v.iteration == 1 and v.state == "paused" and len(v.records) == 1
    assert v.records[0]["iteration"] == 1 and np.isfinite(v.records[0]["mse"])


def test_start_pause_and_a_correction_frame(session: Session, wait_until) -> None:
    session.start()
    wait_until(lambda: session.view().iteration >= 7)
    session.pause()
    time.sleep(0.3)
    it = session.view().iteration
    time.sleep(0.5)
    v = session.view()
    assert v.iteration == it and v.state == "paused"  # pause holds
    frames = v.frames[1:]
    assert [f.iteration for f in frames] == [3 * k for k in range(1, len(frames) + 1)]  # one frame per L
    f = frames[-1]
    assert f.before is not None and f.before.shape == f.z.shape == (400, 2)
    assert len(f.source) == len(f.target) == min(400, PAIRS_N)  # the exact solver matches everyone
    # Eq. 10 on the view subsample: after = alpha T(z_hat) + (1 - alpha) z_hat moves each point halfway (alpha 0.5).
    np.testing.assert_allclose(f.moved, 0.5 * f.source + 0.5 * f.target, atol=1e-5)
    assert np.isfinite(f.metrics["chain_fit"]) and f.metrics["chain_fit"] > 0
    assert np.abs(f.source - f.target).mean() > 0.05  # the targets are not the points themselves: they moved


def test_live_update_reaches_the_trainer_and_bad_fields_are_refused(session: Session, wait_until) -> None:
    new = session.update(alpha=0.9, step_size=0.05, steps=3)
    assert (new.alpha, new.langevin.step_size, new.langevin.steps) == (0.9, 0.05, 3)
    session.step()
    wait_until(lambda: session.view().iteration == 1)
    assert session._trainer.cfg.alpha == 0.9 and session._trainer.cfg.langevin.steps == 3
    with pytest.raises(ValueError, match="Reset"):
        session.update(ot_every=5)
    with pytest.raises(ValueError, match="alpha"):
        session.update(alpha=2.0)


def test_reset_starts_over_with_a_new_config(session: Session, wait_until) -> None:
    session.step()
    wait_until(lambda: session.view().iteration == 1)
    run = session.view().run
    session.reset(replace(CFG, method="abp", alpha=0.0))
    v = session.view()
    assert v.iteration == 0 and v.state == "idle" and v.cfg.method == "abp" and v.run == run + 1
    with pytest.raises(ValueError, match="no mnist images"):
        session.reset(replace(CFG, data=DataConfig("mnist", (42,))))
    assert session.view().cfg.method == "abp"  # a failed reset keeps the old run


def test_divergence_pauses_with_a_message(wait_until) -> None:
    s = Session(replace(CFG, langevin=LangevinConfig(steps=10, step_size=50.0)))
    try:
        s.start()
        wait_until(lambda: s.state != "running")
        v = s.view()
        assert v.state == "paused" and "diverged" in v.message and "lower" in v.message
        assert "Rolled back to iteration 0" in v.message and v.iteration == 0
        assert np.isfinite(v.live).all()
        s.update(step_size=0.1)  # the user lowers s and goes on from the last finite state
        s.step()
        wait_until(lambda: s.view().iteration == 1)
    finally:
        s.stop()


def test_stop_ends_the_thread(session: Session, wait_until) -> None:
    session.start()
    wait_until(lambda: session.view().iteration >= 1)
    session.stop()
    assert not session._thread.is_alive() and session.state == "paused"
    it = session.view().iteration
    session.step()  # a stopped session can go on in a new thread
    wait_until(lambda: session.view().iteration == it + 1)


def test_mean_prior_fit_is_the_two_sample_level() -> None:
    assert 0.03 < mean_prior_fit(500, 2) < 0.1  # about 0.06 at n = 500, d = 2 (README: 0.023 at n = 2000)


def test_pca_projection_is_orthonormal_and_fixed() -> None:
    rng = np.random.RandomState(0)
    z = rng.standard_normal((500, 8)) * np.array([3, 2, 1, 1, 1, 1, 1, 1])
    p = Projection("pca").fit(z)
    e = rng.standard_normal((4000, 8))
    cov = np.cov(p.transform(e), rowvar=False)  # N(0, I_d) projects to N(0, I_2)
    assert np.allclose(cov, np.eye(2), atol=0.08) and p.exact_prior
    # fixed: the axes are z's top two right singular vectors (up to sign), whatever is transformed later
    _, vecs = np.linalg.eigh(z.T @ z)
    want = z[:5] @ vecs[:, [-1, -2]]
    assert np.allclose(np.abs(p.transform(z[:5])), np.abs(want), atol=1e-4)
    assert np.allclose(np.abs(p.transform(e[:5])), np.abs(e[:5] @ vecs[:, [-1, -2]]), atol=1e-4)
    with pytest.raises(ValueError, match="fitted for d = 8"):
        p.transform(z[:, :3])
    assert torch.equal(torch.from_numpy(Projection().fit(z[:, :2]).transform(z[:3, :2])),
                       torch.from_numpy(z[:3, :2].astype(np.float32)))


def test_close_returns_at_once_and_the_thread_ends_for_good(session: Session, wait_until) -> None:
    session.start()
    wait_until(lambda: session.view().iteration >= 1)
    t0 = time.monotonic()
    session.close()  # what a closed tab calls on the server's event loop: it must not wait
    assert time.monotonic() - t0 < 0.1
    wait_until(lambda: not session._thread.is_alive())
    session.start()  # a closed session never trains again
    session.step()
    time.sleep(0.3)
    assert not session._thread.is_alive()


def test_turns_are_served_first_come_first_served() -> None:
    turns, order, ready = Turns(1), [], threading.Barrier(3)

    def worker(name: str) -> None:
        ready.wait()
        for _ in range(3):
            with turns.turn():
                order.append(name)
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    ready.wait()
    for t in threads:
        t.join()
    assert sorted(order) == list("aaabbb")
    assert all(x != y for x, y in zip(order[1:5], order[2:6]))  # once both wait, they alternate


def test_a_view_asking_for_the_model_waits_for_one_iteration_at_most(session: Session, wait_until) -> None:
    session.start()
    wait_until(lambda: session.view().iteration >= 3)
    for _ in range(10):  # the thread would otherwise take its lock straight back, iteration after iteration
        before = session.view().iteration
        _, generator, it = session.model()
        assert it - before <= 2 and not generator.training  # the one in flight, and one that began just before
        time.sleep(0.01)


def test_a_page_being_drawn_takes_a_turn_back_without_waiting_for_one() -> None:
    turns, started = Turns(2), threading.Event()
    with turns.turn():                       # one run trains
        with turns.yielding():               # a page is drawn: returns at once although no slot is free
            def second() -> None:
                with turns.turn():
                    started.set()
            t = threading.Thread(target=second)
            t.start()
            assert not started.wait(0.3)     # the other run waits while the page is drawn ...
        assert started.wait(2.0)             # ... and starts once it is done
        t.join()
    with Turns(1).yielding():                # one slot in all: training keeps it
        pass
    one = Turns(1)
    with one.yielding(), one.turn():
        pass


def test_a_run_keeping_pace_never_gets_ahead_of_its_leader(wait_until) -> None:
    leader, follower = Session(CFG), Session(replace(CFG, method="abp", alpha=0.0))  # ABP is the faster run
    follower.keep_pace(leader)
    try:
        leader.start()
        follower.start()
        seen = [(0, 0)]
        t_end = time.monotonic() + 60.0  # about 4 s here when quiet; a loaded machine only takes longer
        while seen[-1][0] < 3 and time.monotonic() < t_end:
            behind = follower.view().iteration   # read first: the leader's count only grows
            seen.append((behind, leader.view().iteration))
            time.sleep(0.01)
        assert all(f <= lead for f, lead in seen)
        assert seen[-1][0] >= 3  # and it kept up, rather than waiting for good
        leader.pause()
        wait_until(lambda: follower.view().iteration == leader.view().iteration)
        it = follower.view().iteration
        follower.step()  # a paused leader holds nobody back
        wait_until(lambda: follower.view().iteration == it + 1)
    finally:
        leader.stop()
        follower.stop()


def test_pause_cuts_a_long_iteration_short(wait_until) -> None:
    s = Session(replace(CFG, langevin=LangevinConfig(steps=20_000)))  # one iteration: about a minute here
    try:
        s.start()
        wait_until(lambda: s.view().busy > 0.5)
        t0 = time.monotonic()
        s.pause()
        wait_until(lambda: s.view().busy == 0.0)
        assert time.monotonic() - t0 < 2.0
        assert s.view().iteration == 0 and s.state == "paused"  # the interrupted iteration did not happen
    finally:
        s.stop()


def test_the_session_device_follows_the_setting_and_refuses_what_is_not_there(monkeypatch) -> None:
    from lvm.live.levels import DEVICE_ENV, session_device
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert session_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")  # auto
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert session_device() == torch.device("cpu") and Session(CFG).device == torch.device("cpu")
    assert session_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")  # an argument wins
    monkeypatch.setenv(DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        session_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv(DEVICE_ENV, "cuda")
        with pytest.raises(ValueError, match="no CUDA device"):
            Session(CFG)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_a_session_trains_on_cuda_and_hands_the_views_cpu_tensors(wait_until) -> None:
    s = Session(replace(CFG, ot=OTConfig(solver="fast")), device="cuda")
    try:
        assert next(s._trainer.generator.parameters()).is_cuda
        s.start()
        wait_until(lambda: s.view().iteration >= 6)
        s.pause()
        v = s.view()
        assert isinstance(v.live, np.ndarray) and np.isfinite(v.live).all() and v.samples.dtype == np.float32
        cfg, gen, _ = s.model()
        assert not next(gen.parameters()).is_cuda
    finally:
        s.stop()


def test_the_latency_script_waits_for_the_demos_first_correction() -> None:
    from benchmarks.app import app_latency  # keeps its own copy of L so as not to load torch in its process
    from lvm.presets import DEMO
    assert app_latency.DEMO_L == DEMO.ot_every


@pytest.mark.slow
def test_a_process_that_exits_while_a_run_trains_ends_cleanly() -> None:
    """The interpreter's exit ends the training threads first (an atexit hook): a thread still inside torch while
    the interpreter finalizes aborts the process with exit code 134 (a test run, or the app's server stopped)."""
    code = ("import time\nfrom tests.test_session import CFG\nfrom lvm.live.session import Session\n"
            "s = Session(CFG)\ns.start()\nt0 = time.monotonic()\n"
            "while s.view().iteration < 3 and time.monotonic() - t0 < 60:\n    time.sleep(0.05)\n"
            "print(s.view().state, s.view().iteration >= 3)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["running", "True"]  # it was still training when the script ended


def test_on_prior_needs_the_distance_and_the_reconstruction() -> None:
    assert on_prior(0.01, 0.02, 0.09, level=0.05)
    assert not on_prior(0.10, 0.02, 0.09, level=0.05)          # q(z^K) far from the prior
    assert not on_prior(0.01, 0.08, 0.09, level=0.05)          # on it, but its z do not explain their images
    assert not on_prior(-0.2, 0.08, 0.09, level=float("inf"))  # the distance alone never suffices
    assert not on_prior(None, None, None, level=0.05)          # not a due iteration


@pytest.mark.slow
@pytest.mark.parametrize("what", ["untrained", "K = 0"])
def test_an_untrained_model_and_k0_never_claim_the_prior(what: str, wait_until) -> None:
    # seed 1: there q(z^K) at K = 0 (the prior noise itself) reads inside the band, so the distance alone would
    # make the claim; lr 1e-9 keeps the generator at its initialisation while K = 10 Langevin steps still run
    cfg = replace(CFG, seed=1, ot_every=2, q_fit_n=300)
    cfg = replace(cfg, lr=1e-9) if what == "untrained" else replace(cfg, langevin=replace(cfg.langevin, steps=0))
    s = Session(cfg)
    try:
        s.start()
        wait_until(lambda: s.view().iteration >= 6, timeout=300)
        s.pause()
        v = s.view()
    finally:
        s.stop()
    due = [f.metrics for f in v.frames[1:] if "q_w2sq" in f.metrics]
    assert len(due) >= 3 and 0 < v.on_prior_w2sq < 0.1  # the band's edge at n = 300, d = 2: about 0.05
    assert all(m["q_mse"] > 0.9 * m["q_prior_mse"] > RECON_SHARE * m["q_prior_mse"] for m in due)
    if what == "K = 0":
        assert all(m["q_w2sq"] <= v.on_prior_w2sq for m in due)  # what the distance alone would have claimed
    assert v.seconds_to_prior is None


@pytest.mark.slow
def test_umap_projection_fits_and_keeps_clusters_apart() -> None:
    """Projection("umap") (the Train view's other choice for d > 2): fitted once, it maps three separated clusters
    of 8-d latents to the plane with each cluster on its own, and new points of a cluster land beside it."""
    rng = np.random.RandomState(0)
    centres = rng.standard_normal((3, 8)) * 6
    labels = np.repeat(np.arange(3), 100)
    z = centres[labels] + rng.standard_normal((300, 8))
    p = Projection("umap").fit(z)
    assert not p.exact_prior  # no contours: the prior is drawn as its projected sample
    xy = p.transform(z)
    assert xy.shape == (300, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    means = np.stack([xy[labels == c].mean(0) for c in range(3)])
    nearest = lambda pts: np.argmin(((pts[:, None] - means[None]) ** 2).sum(-1), 1)  # noqa: E731
    assert (nearest(xy) == labels).mean() > 0.95
    new = centres[labels[:30:10]] + rng.standard_normal((3, 8))  # one new point of each cluster
    assert (nearest(p.transform(new)) == labels[:30:10]).all()
    with pytest.raises(ValueError, match="fitted for d = 8"):
        p.transform(z[:, :3])
