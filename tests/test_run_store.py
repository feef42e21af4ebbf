"""Live runs kept on disk (lvm.live.store): a restored run goes on exactly as the same run paused and resumed,
across a process restart too, and a kill -9 during a write leaves the previous file readable. Real MNIST 0/1."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lvm.config import DataConfig, LangevinConfig, ModelConfig, OTConfig, TrainConfig
from lvm.fileio import CheckpointError
from lvm.live import store
from lvm.live.session import Session

ROOT = Path(__file__).resolve().parent.parent
CFG = TrainConfig(method="ours", alpha=0.5, ot_every=3, batch_size=100, checkpoint_every=0, seed=0,
                  data=DataConfig("mnist", (0, 1), limit=400), model=ModelConfig(2, "mlp"),
                  langevin=LangevinConfig(steps=10), ot=OTConfig(solver="exact"))
BEFORE, AFTER = 7, 5  # iterations before the checkpoint (two corrections), and after it


def _steps(s: Session, n: int, wait_until) -> None:
    """n single iterations (Step: never a Pause inside a correction, so runs compare like with like)."""
    for _ in range(n):
        it = s.view().iteration
        s.step()
        wait_until(lambda: s.view().iteration == it + 1 and s.view().busy == 0)


@pytest.mark.slow
def test_a_restored_run_goes_on_exactly_as_the_same_run_paused_and_resumed(tmp_path, wait_until) -> None:
    a = Session(CFG)
    _steps(a, BEFORE, wait_until)
    a.update(alpha=0.8)  # a live setting changed while paused: kept
    store.save("abc123", {"main": a.export()}, {"with_abp": False}, root=tmp_path)
    at_save = store.digest(a.export()["trainer"])
    _steps(a, AFTER, wait_until)  # the same run, paused and resumed without a restart

    saved, meta = store.load("abc123", root=tmp_path)
    b = Session(CFG)
    b.restore(saved["main"])
    v = b.view()
    assert (v.iteration, v.state, v.cfg.alpha, meta) == (BEFORE, "paused", 0.8, {"with_abp": False})
    assert store.digest(b.export()["trainer"]) == at_save
    assert [f.iteration for f in v.frames] == [f.iteration for f in a.view().frames][:len(v.frames)]
    assert len(v.records) == BEFORE and v.seconds > 0
    _steps(b, AFTER, wait_until)
    assert b.view().iteration == BEFORE + AFTER
    assert store.digest(b.export()["trainer"]) == store.digest(a.export()["trainer"]) != at_save
    a.stop(), b.stop()


_TRAIN_AND_SAVE = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    from test_run_store import CFG, BEFORE
    from lvm.live import store
    from lvm.live.session import Session
    s = Session(CFG)
    for _ in range(BEFORE):
        it = s.view().iteration
        s.step()
        while not (s.view().iteration == it + 1 and s.view().busy == 0):
            time.sleep(0.01)
    store.save("feed01", {{"main": s.export()}}, root=__import__("pathlib").Path({out!r}))
    print(store.digest(s.export()["trainer"]), flush=True)
    time.sleep(600)  # killed -9 here: a server gone without a goodbye
""")


@pytest.mark.slow
def test_a_run_resumes_after_its_process_is_killed_as_if_it_had_only_paused(tmp_path, wait_until) -> None:
    code = _TRAIN_AND_SAVE.format(root=str(ROOT), tests=str(ROOT / "tests"), out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    saved_digest = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    a = Session(CFG)  # the same run in this process, paused after BEFORE iterations and resumed
    _steps(a, BEFORE, wait_until)
    assert store.digest(a.export()["trainer"]) == saved_digest
    _steps(a, AFTER, wait_until)
    b = Session(CFG)
    b.restore(store.load("feed01", root=tmp_path)[0]["main"])
    assert b.view().iteration == BEFORE
    _steps(b, AFTER, wait_until)
    print(f"iteration {BEFORE} before the kill, {b.view().iteration} after resuming {AFTER}; sha256 of the trainer "
          f"state: restored {store.digest(b.export()['trainer'])}, paused and resumed {store.digest(a.export()['trainer'])}")
    assert store.digest(b.export()["trainer"]) == store.digest(a.export()["trainer"])
    a.stop(), b.stop()


_WRITE_FOREVER = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    from pathlib import Path
    from test_run_store import CFG
    from lvm.live import store
    from lvm.live.session import Session
    s = Session(CFG)
    s.step()
    saved = s.export()
    n = 0
    while True:  # a real run's file, made ~40 MB so that a kill lands inside a write most of the time
        saved["trainer"]["ballast"] = torch.full((10_000_000,), float(n))
        store.save("abcdef", {{"main": saved}}, {{"n": n}}, root=Path({out!r}))
        n += 1
        print(n, flush=True)
""")


@pytest.mark.slow
def test_a_kill_during_a_write_leaves_the_previous_file_readable(tmp_path) -> None:
    code = _WRITE_FOREVER.format(root=str(ROOT), tests=str(ROOT / "tests"), out=str(tmp_path))
    mid_write = 0
    for attempt in range(4):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        done = int(proc.stdout.readline())  # one whole write on disk
        time.sleep(0.05 + 0.07 * attempt)   # then somewhere inside a later one
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mid_write += any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
        sessions, meta = store.load("abcdef", root=tmp_path)  # a whole file, never half of one
        assert meta["n"] >= done - 1 and float(sessions["main"]["trainer"]["ballast"][-1]) == meta["n"]
        for p in tmp_path.glob(".*.tmp"):  # what sweep deletes an hour later
            os.utime(p, (time.time() - 7200, time.time() - 7200))
        store.sweep(root=tmp_path)
        assert not list(tmp_path.glob(".*.tmp")) and (tmp_path / "abcdef.pt").exists()
    assert mid_write >= 1  # at least one kill landed inside a write


def test_sweep_keeps_fresh_runs_and_deletes_old_ones(tmp_path) -> None:
    old, fresh = tmp_path / "aaaaaa.pt", tmp_path / "bbbbbb.pt"
    old.write_bytes(b"x"), fresh.write_bytes(b"x")
    os.utime(old, (time.time() - 25 * 3600, time.time() - 25 * 3600))
    assert store.sweep(24, root=tmp_path) == [old] and fresh.exists()


def test_a_link_cannot_name_a_file_outside_the_runs_folder(tmp_path) -> None:
    for bad in ("../etc", "abc/def", "", "ABCDEF0"):
        with pytest.raises(ValueError):
            store.run_path(bad, tmp_path)
        assert not store.exists(bad, tmp_path)
    with pytest.raises(CheckpointError):
        store.load("abcdef", root=tmp_path)  # no such run


@pytest.mark.slow
def test_the_keeper_writes_on_pause_and_while_training_and_not_when_nothing_changed(tmp_path, wait_until) -> None:
    s = Session(CFG)
    k = store.Keeper("cafe01", lambda: {"main": s}, lambda: {"presenter": "x"}, every=1.0, root=tmp_path)
    time.sleep(2 * store.POLL + 0.5)
    assert k.writes == 0  # a run never trained: nothing to go on from
    _steps(s, 1, wait_until)
    wait_until(lambda: k.writes == 1)  # a Step, written once
    time.sleep(2 * store.POLL + 0.5)
    assert k.writes == 1  # nothing changed: nothing written
    s.start()
    wait_until(lambda: k.writes >= 3, timeout=30)  # every second while it trains
    s.pause()
    wait_until(lambda: s.state == "paused" and s.view().busy == 0)
    it = s.view().iteration
    wait_until(lambda: store.load("cafe01", root=tmp_path)[0]["main"]["trainer"]["iteration"] == it, timeout=10)
    s.stop()
    k.close()
    assert not k._thread.is_alive()
