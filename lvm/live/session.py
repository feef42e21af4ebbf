"""One live training run of Alg. 1 in a background thread, for an interactive front end.

A `Session` owns a `Trainer` and the only thread that steps it. The thread never
touches a UI: after each iteration it appends a small, bounded snapshot under a
lock, and a front end polls `Session.view()` (a consistent copy) whenever it
redraws. Every L iterations it keeps a `Frame` of q(z^K): a fixed subsample of
the latent population and, at an OT correction, the cloud before Eq. 10,

    z_i <- alpha T(z_i) + (1 - alpha) z_i,

with a sample of the assignment pairs (z_hat_i, T(z_hat_i)).

alpha, s and K can change while the thread runs (`update`); the thread hands them
to `Trainer.retune` before its next iteration. Anything else needs `reset`. A NaN (`DivergedError`) rolls the run back to its last
finite state and pauses it with a message (latents running away from the prior
count as diverged); the thread lives on.
"""
from __future__ import annotations

import atexit
import copy
import threading
import time
import weakref
from typing import Callable

import numpy as np
import torch
from torch import nn

from .. import data as datasets
from ..config import TrainConfig
from ..data import ImageData
from ..langevin import Interrupted
from ..metrics import prior_band
from ..trainer import LATENT_FIT_N, RETUNABLE, DivergedError, Step, Trainer, live_settings, retuned
from .frames import Frame, State, View, decoded, thin, view_size
from .levels import mean_prior_fit, on_prior, session_device
from .turns import Turns, as_training_thread, process_turns

MAX_FRAMES = 240         # frames of q(z^K) kept; beyond it every other one is dropped (the replay thins evenly)
MAX_RECORDS = 20_000     # per-iteration metric records kept, thinned the same way
PAIRS_N = 300            # assignment lines kept per correction
FIT_N = LATENT_FIT_N     # latents in the exact OT fit statistic, as the trainer logs it (about 20 ms)
LIVE = RETUNABLE         # what `update` changes while the thread runs: what Trainer.retune can


THREAD_NAME = "lvm-session"


_SESSIONS: weakref.WeakSet = weakref.WeakSet()  # every Session of this process, for `_end_all`


@atexit.register
def _end_all() -> None:
    """At interpreter exit, end every session's thread after its iteration in flight (cut short), so that no
    training thread is inside torch while the interpreter finalizes: that aborts the process ("terminate called
    without an active exception", exit code 134), e.g. a test run whose last test left a run training."""
    for s in list(_SESSIONS):
        s.stop(timeout=10.0)


class Session:
    """A live training run: start / pause / step / reset / stop, live alpha, s, K, bounded history.

    Args:
        cfg: the run's configuration (its ``epochs`` is ignored: the run goes on until paused).
        threads: torch threads for the process while this session trains (0 leaves torch's setting).
        load: data loader, ``lvm.data.load`` by default.
        device: where it trains (see `session_device`).
        turns: the turn-taker its iterations go through, shared with the other runs it must not crowd out
            (default: the process's, `turns.process_turns()`).
    """

    def __init__(self, cfg: TrainConfig, threads: int = 1,
                 load: Callable[[object, str], ImageData] = datasets.load, device: str | None = None,
                 turns: Turns | None = None):
        self._load, self._threads = load, threads
        self._turns = turns if turns is not None else process_turns()  # whose iterations take turns with ours
        self.device = session_device(device)  # fixed for the session's life: every reset trains there too
        self._lock = threading.Condition()   # guards the fields below and wakes the worker
        self._train_lock = threading.Lock()  # held while the trainer steps or is replaced
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._interrupt = threading.Event()  # set by pause, reset, stop and close: the iteration in flight ends early
        self._closed = False                 # set once by `close`: the thread ends and never restarts
        self._run = 0
        self._leader: Session | None = None  # see keep_pace
        self._readers = 0                    # views waiting in `model` for the iteration in flight to end
        self._build(cfg)
        _SESSIONS.add(self)

    # ---- commands (any thread) ----------------------------------------------------------------
    def start(self) -> None:
        """Run iterations back to back until `pause`."""
        with self._lock:
            if self._state == State.ERROR:
                return
            self._state, self._message = State.RUNNING, ""
            self._ensure_thread()
            self._lock.notify_all()

    def pause(self) -> None:
        """Stop after the iteration in flight, which is cut short (see `Trainer.step`'s `interrupt`)."""
        with self._lock:
            if self._state == State.RUNNING:
                self._state = State.PAUSED
                self._interrupt.set()
                self._lock.notify_all()  # a run keeping pace with this one stops waiting for it

    def step(self) -> None:
        """One iteration (inference, correction when due, learning), then paused."""
        with self._lock:
            if self._state == State.ERROR:
                return
            self._state, self._pending = State.PAUSED, self._pending + 1
            self._ensure_thread()
            self._lock.notify_all()

    def keep_pace(self, leader: Session | None) -> None:
        """Never run ahead of `leader` while it trains (ABP beside ours: both at the same iteration, so that
        the two share the cores fairly and are compared after the same work); None: run free."""
        self._leader = leader

    def past_or_idle(self, iteration: int, wait: float = 0.0) -> bool:
        """True if this run is past `iteration` or not training (nor about to: no Step pending, no iteration in
        flight); otherwise wait up to `wait` seconds for its next iteration and answer again."""
        with self._lock:
            for waited in (False, True):
                training = self._state == State.RUNNING or self._pending > 0 or self._busy_since is not None
                if self._iteration > iteration or not training:
                    return True
                if not waited and wait > 0:
                    self._lock.wait(wait)
            return False

    def update(self, **live: float) -> TrainConfig:
        """Change any of LIVE (alpha, lr, step_size (s), steps (K), sigma) from the next iteration on; returns
        the new config.

        Raises:
            ValueError: a field that needs `reset`, or a value the config refuses.
        """
        bad = sorted(set(live) - set(LIVE))
        if bad:
            raise ValueError(f"{', '.join(bad)} cannot change while training; press Reset to apply")
        with self._lock:
            self._cfg = retuned(self._cfg, **live)
            return self._cfg

    def reset(self, cfg: TrainConfig | None = None, saved: dict | None = None) -> None:
        """Pause, then start over from iteration 0 with `cfg` (default: the current config), or from `saved`.

        Raises:
            MissingDataError, ValueError: the data cannot be loaded with `cfg`; the old run is kept.
        """
        with self._lock:
            self._state = State.PAUSED if self._state == State.RUNNING else self._state
            self._pending = 0
            self._interrupt.set()
            cfg = cfg or self._cfg
        with self._train_lock:  # waits for the iteration in flight
            self._build(cfg, saved)

    def close(self) -> None:
        """End the thread after the iteration in flight, without waiting for it (safe on an event loop).

        For good: a closed session never starts a thread again.
        """
        with self._lock:
            self._closed = True
            self._interrupt.set()
            self._state = State.PAUSED if self._state == State.RUNNING else self._state
            self._lock.notify_all()

    def stop(self, timeout: float = 30.0) -> None:
        """End the thread after the iteration in flight (a later start or step begins a new one)."""
        with self._lock:
            self._stopping = True
            self._interrupt.set()
            self._state = State.PAUSED if self._state == State.RUNNING else self._state
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._stopping = False

    # ---- queries (any thread) -----------------------------------------------------------------
    @property
    def cfg(self) -> TrainConfig:
        with self._lock:
            return self._cfg

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def view(self) -> View:
        with self._lock:
            return View(self._run, self._state, self._message, self._cfg, self._iteration, self._epoch, self._seconds,
                        self._live, tuple(self._frames), tuple(self._records), self._prior_fit, self._q_prior_fit,
                        self._seconds_to_prior, self._labels, self._samples,
                        time.monotonic() - self._busy_since if self._busy_since else 0.0, self._on_prior_w2sq)

    def model(self) -> tuple[TrainConfig, nn.Module, int]:
        """(config, a copy of the generator in eval mode, iteration): safe to use while training goes on."""
        with self._lock:
            self._readers += 1  # the thread starts no iteration until this copy is made (a lock is not fair)
        try:
            with self._train_lock:  # on the CPU: the views feed it CPU tensors
                return self._trainer.cfg, copy.deepcopy(self._trainer.generator).cpu().eval(), self._trainer.iteration
        finally:
            with self._lock:
                self._readers -= 1
                self._lock.notify_all()

    def snapshot(self) -> tuple[int, nn.Module]:
        """(iteration, the generator as of the newest frame, in eval mode on the CPU): published with each frame,
        so a front end decodes a clicked z at once instead of waiting for the iteration in flight (`model`).
        Shared: use it under torch.no_grad and never change it."""
        with self._lock:
            return self._snapshot

    def view_index(self) -> np.ndarray:
        """Which training images the frames' view subsample holds (row i of every frame is image view_index()[i])."""
        with self._lock:
            return self._idx.numpy().copy()

    def data(self) -> ImageData:
        return self._trainer.data

    def export(self) -> dict:
        """What a restart needs to go on from here (`restore`), taken between iterations: a copy of the trainer's
        `state_dict` (model, optimiser, chains, OT state, iteration), the live config, the kept frames, records
        and clocks (lvm.live.store writes it)."""
        with self._lock:
            self._readers += 1  # as `model`: the thread starts no iteration until the copy is made
        try:
            with self._train_lock, self._lock:
                return {"trainer": copy.deepcopy(self._trainer.state_dict()), "cfg": self._cfg,
                        "frames": tuple(self._frames), "records": tuple(self._records), "seconds": self._seconds,
                        "epoch": self._epoch, "seconds_to_prior": self._seconds_to_prior}
        finally:
            with self._lock:
                self._readers -= 1
                self._lock.notify_all()

    def restore(self, saved: dict) -> None:
        """Go on from an `export` (this process's or an earlier one's): paused at the iteration it reached, with
        its history and live settings. Raises as `reset`."""
        self.reset(saved["cfg"], saved)

    # ---- internals ----------------------------------------------------------------------------
    def _build(self, cfg: TrainConfig, saved: dict | None = None) -> None:
        """A fresh trainer and empty history, or those of an `export` (caller holds _train_lock or no thread runs
        yet)."""
        data = self._load(cfg.data, "train")
        trainer = Trainer(cfg, data, self.device) if saved is None else Trainer.from_state(saved["trainer"], data,
                                                                                           self.device)
        n, d = len(trainer.data), cfg.model.latent_dim
        rng = np.random.RandomState(cfg.seed)
        idx = np.sort(rng.choice(n, min(n, view_size(d)), replace=False))
        prior_fit = mean_prior_fit(min(FIT_N, n), d)
        q_prior_fit = mean_prior_fit(min(cfg.q_fit_n, n), d) if cfg.q_fit_n else float("nan")
        level = prior_band(min(cfg.q_fit_n, n), d).upper if min(cfg.q_fit_n, n) >= 4 else float("nan")
        labels = trainer.data.y[torch.from_numpy(idx)].numpy().copy()
        samples = decoded(trainer.generator, d)
        snapshot = (0, copy.deepcopy(trainer.generator).cpu().eval())
        with self._lock:
            self._snapshot = snapshot
            self._trainer, self._cfg, self._idx = trainer, cfg, torch.from_numpy(idx)
            self._run += 1
            self._pairs = torch.from_numpy(np.sort(rng.choice(len(idx), min(len(idx), PAIRS_N), replace=False)))
            self._state, self._message, self._pending, self._busy_since = State.IDLE, "", 0, None
            self._iteration, self._epoch, self._seconds, self._seconds_to_prior = 0, 0.0, 0.0, None
            self._live = trainer.z[self._idx].numpy().copy()
            self._frames = [Frame(0, 0.0, self._live)]
            self._records: list[dict] = []
            self._prior_fit, self._q_prior_fit, self._labels, self._samples = prior_fit, q_prior_fit, labels, samples
            self._on_prior_w2sq = level
            if saved is not None:
                self._frames, self._records, self._state = list(saved["frames"]), list(saved["records"]), State.PAUSED
                self._iteration, self._epoch = trainer.iteration, saved["epoch"]
                self._seconds, self._seconds_to_prior = saved["seconds"], saved["seconds_to_prior"]

    def _ensure_thread(self) -> None:
        if not self._closed and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def _next_job(self) -> tuple[bool, TrainConfig]:
        """Block until there is an iteration to run; (False, _) means stop."""
        with self._lock:
            while not (self._stopping or self._closed) and (self._readers or self._state != State.RUNNING
                                                             and self._pending == 0):
                self._lock.wait()
            if self._stopping or self._closed:
                return False, self._cfg
            self._pending = max(0, self._pending - 1)
            self._interrupt.clear()
            return True, self._cfg

    def _loop(self) -> None:
        as_training_thread(THREAD_NAME)
        if self._threads:
            torch.set_num_threads(self._threads)
        while True:
            go, cfg = self._next_job()
            if not go:
                return
            if not self._behind_leader():
                continue
            with self._turns.turn(), self._train_lock:
                with self._lock:
                    self._busy_since = time.monotonic()
                try:
                    self._iterate(cfg)
                except DivergedError as e:  # back to the last finite state; the user lowers a setting
                    it = self._trainer.rollback()
                    with self._lock:
                        self._iteration, self._live = it, self._trainer.z[self._idx].numpy().copy()
                    self._halt(State.PAUSED, f"{e}. Rolled back to iteration {it}, the last finite state.")
                except (ValueError, RuntimeError, MemoryError) as e:  # e.g. the exact solver's size cap
                    self._halt(State.ERROR, f"training stopped: {e}")
                finally:
                    with self._lock:
                        self._busy_since = None

    def _behind_leader(self) -> bool:
        """Wait until the leader is past this run's iteration or stops training; False if this run was paused,
        reset or closed meanwhile (its iteration is dropped)."""
        leader = self._leader
        while leader is not None and not self._interrupt.is_set():
            if leader.past_or_idle(self._iteration, wait=0.25):
                return True
        return not self._interrupt.is_set()

    def _iterate(self, cfg: TrainConfig) -> None:
        """One trainer step with the latest live settings, then a snapshot (caller holds _train_lock)."""
        tr = self._trainer
        tr.retune(**live_settings(cfg))
        try:
            step = tr.step(interrupt=self._interrupt.is_set)
        except Interrupted:  # paused during the batch's inference: the iteration did not happen
            return
        seconds = self._seconds + step.metrics.seconds  # only this thread writes _seconds
        live = tr.z[self._idx].numpy().copy()
        due = step.metrics.chain_fit is not None
        frame = self._frame(tr, step, live, seconds) if due else None
        samples = decoded(tr.generator, tr.cfg.model.latent_dim) if due else None
        snapshot = (tr.iteration, copy.deepcopy(tr.generator).cpu().eval()) if due else None
        rec = step.record()
        with self._lock:
            if tr is not self._trainer:
                return
            self._iteration, self._epoch, self._seconds = tr.iteration, step.metrics.epoch, seconds
            self._lock.notify_all()  # a run keeping pace with this one may go on
            self._live = live
            self._records = thin(self._records + [dict(rec, elapsed=seconds, wall=time.monotonic())], MAX_RECORDS)
            if frame is not None:
                self._frames = thin(self._frames + [frame], MAX_FRAMES)
                self._samples, self._snapshot = samples, snapshot
                m = step.metrics
                if self._seconds_to_prior is None and on_prior(m.q_w2sq, m.q_mse, m.q_prior_mse, self._on_prior_w2sq):
                    self._seconds_to_prior = seconds

    def _frame(self, tr: Trainer, step: Step, live: np.ndarray, seconds: float) -> Frame:
        """A frame of a due iteration: the view subsample, and at a correction its before-cloud and pairs."""
        rec = step.record()
        keep = {k: rec[k] for k in ("chain_fit", "q_fit", "chains_w2sq", "q_w2sq", "q_mse", "q_prior_mse", "ot_cost",
                                    "unmatched", "mse") if k in rec}
        c = step.correction
        if c is None or c.skipped:
            return Frame(tr.iteration, seconds, live, metrics=keep)
        before = c.before[self._idx]
        assign = c.assignment[self._idx][self._pairs]
        src = before[self._pairs][assign >= 0]
        tgt = tr.targets[assign[assign >= 0]]
        moved = live[self._pairs.numpy()][(assign >= 0).numpy()]
        return Frame(tr.iteration, seconds, live, before.numpy().copy(), src.numpy().copy(),
                     tgt.numpy().copy(), keep, moved.copy())

    def _halt(self, state: State, message: str) -> None:
        with self._lock:
            self._state, self._message, self._pending = state, message, 0
