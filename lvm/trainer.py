"""Alg. 1: short-run Langevin inference, OT correction every L iterations, learning.

One persistent chain per training image (an n x d tensor), started at a prior
sample {z_j} drawn once; the same sample is the OT target at every
correction. alpha = 0 (method "abp") is alternating back-propagation; method
"vae" trains an encoder with the same decoder instead of running Langevin.

`Trainer.step` runs one iteration and returns a typed `Step` (its `StepMetrics`
and, when one was due, the `Correction`); `fit` is that step in a loop with one
callback. The trainer keeps no UI state and never plots, prints or imports a UI;
`retune` is the one way to change a run's settings while it goes on. On several processes
(torchrun), `lvm.distributed.trainer.DistributedTrainer` runs this same loop on a shard of the
population through the hooks marked "(a hook of DistributedTrainer)".
"""
from __future__ import annotations

import collections
import contextlib
import copy
import math
import threading
import warnings
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import torch

from . import checkpoint, langevin, ot
from .config import TrainConfig, from_dict
from .data import ImageData
from .metrics import QFit, latent_ot_cost, prior_w2sq, q_fit
from .models import Encoder, build_generator, prior_sample
from .records import Correction, Step, StepMetrics
from .vae import negative_elbo

LATENT_FIT_N = 500  # subsample of the chains whose distance to the prior is logged at due iterations
RUNAWAY = 100.0     # mean z_i^2 per dimension (the prior's is 1) beyond which the latents count as diverged
GOOD_EVERY = 5      # iterations between in-memory copies of a finite state (the rollback points)
GOOD_KEEP = 4       # copies kept: a rollback goes to the newest, a second one further back
RETUNABLE = ("alpha", "lr", "step_size", "steps", "sigma")  # what `retune` may change while a run goes on


def retuned(cfg: TrainConfig, **settings: float) -> TrainConfig:
    """`cfg` with some of RETUNABLE changed (what `Trainer.retune` applies to a run in flight).

    Raises:
        ValueError: a setting outside RETUNABLE, or a value the config refuses.
    """
    bad = sorted(set(settings) - set(RETUNABLE))
    if bad:
        raise ValueError(f"{', '.join(bad)} cannot change during a run (only {', '.join(RETUNABLE)})")
    lv = {k: settings.pop(k) for k in ("step_size", "steps", "sigma") if k in settings}
    return replace(cfg, langevin=replace(cfg.langevin, **lv), **settings)


def live_settings(cfg: TrainConfig) -> dict[str, float]:
    """The values of RETUNABLE in `cfg`, by name (what a front end hands to `Trainer.retune`)."""
    lv = cfg.langevin
    return {"alpha": cfg.alpha, "lr": cfg.lr, "step_size": lv.step_size, "steps": lv.steps, "sigma": lv.sigma}


class DivergedError(FloatingPointError):
    """Training produced a NaN or inf; the message says which setting to lower."""


def seeded_rng(seed: int, *keys: int) -> torch.Generator:
    """A generator seeded by (seed, keys): runs resume bit-for-bit without storing RNG state."""
    s = seed
    for k in keys:
        s = (s * 1_000_003 + k) % (2**63 - 1)
    return torch.Generator().manual_seed(s)


class Trainer:
    """Holds the model, its optimiser and the latent population; `step` runs one iteration."""

    def __init__(self, cfg: TrainConfig, data: ImageData, device: str | torch.device = "cpu"):
        if len(data) == 0:
            raise ValueError("the training set is empty")
        self.cfg, self.data, self.device = cfg, data, torch.device(device)
        torch.manual_seed(cfg.seed)  # parameter initialisation
        self.generator = build_generator(cfg.model).to(self.device)
        self.encoder = Encoder(cfg.model).to(self.device) if cfg.method == "vae" else None
        params = list(self.generator.parameters()) + (list(self.encoder.parameters()) if self.encoder else [])
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
        n, d = len(data), cfg.model.latent_dim
        self.targets = prior_sample(n, d, seeded_rng(cfg.seed, 1))  # {z_j}: drawn once, kept fixed (Alg. 1 input 5)
        self.z = self.targets.clone()                          # chains start at the fixed prior sample
        self.rows = slice(0, n)                                # the population's rows this process holds
        self.iteration = 0
        self.ot_warm: ot.WarmStart | None = None               # last solver state: the next correction starts there
        self.good: collections.deque[dict] = collections.deque(maxlen=GOOD_KEEP)  # finite states: see `rollback`
        self.good.append(copy.deepcopy(self.state_dict()))

    # ---- schedule -------------------------------------------------------------------------
    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.data) / self.cfg.batch_size)

    @property
    def total_iterations(self) -> int:
        return math.ceil(self.cfg.epochs * self.batches_per_epoch)

    def batch_indices(self, it: int) -> torch.Tensor:
        """Indices of iteration `it`: a fresh permutation per epoch, seeded by (seed, epoch)."""
        epoch, b = divmod(it, self.batches_per_epoch)
        perm = torch.randperm(len(self.data), generator=seeded_rng(self.cfg.seed, 2, epoch))
        return perm[b * self.cfg.batch_size:(b + 1) * self.cfg.batch_size]

    # ---- one iteration of Alg. 1 ------------------------------------------------------------
    def step(self, ot_progress: ot.Progress | None = None, interrupt: ot.Interrupt | None = None) -> Step:
        """Inference, correction when due, L2 learning steps (Alg. 1); `ot_progress` hears each OT pass.

        `interrupt` (a paused live run) is asked between Langevin steps and OT passes. True during the
        batch's inference raises `langevin.Interrupted` with the run unchanged (the iteration did not
        happen); later, the correction is skipped and the q(z^K) fit left out, and the iteration ends.
        """
        cfg, it = self.cfg, self.iteration
        t0 = time.perf_counter()
        idx = self.batch_indices(it)
        x = self.data.x[idx].to(self.device)                        # (B, C, H, W)
        rng = seeded_rng(cfg.seed, 3, it)
        due = (it + 1) % cfg.ot_every == 0
        correction, chains = None, (None, None)
        if cfg.method == "vae":
            loss, mse = self._learn_vae(x, idx, rng)
        else:
            # 1. inference: K Langevin steps of Eq. 7 from the chain's last state (or from noise)
            z0, noise = self._chain_start(idx, rng)
            self.z[idx] = langevin.infer(self.generator, x, z0.to(self.device), cfg.langevin, rng,
                                         interrupt=interrupt, noise=noise).cpu()
            # 2. correction of the whole population every L iterations (Alg. 1 lines 8-11); the chains'
            #    fit is measured before Eq. 10 moves them
            if due:
                chains = self._chain_fits()
            if due and cfg.corrects:
                correction = self.correct(ot_progress, interrupt)
            # 3. learning: L2 Adam steps on theta with the (corrected) pairs (z_i, x_i), Eq. 3-5
            loss, mse = self._learn(x, self.z[idx].to(self.device))
        q = None
        if due and cfg.method == "vae":  # its population holds the encoder means
            chains = self._chain_fits()
        elif due and cfg.q_fit_n:     # after learning: the generator this iteration leaves behind
            with contextlib.suppress(langevin.Interrupted):
                q = self.q_fit(interrupt)
        self.iteration += 1
        qs = (None,) * 4 if q is None else (q.ot_cost, q.w2sq, q.mse, q.prior_mse)
        metrics = StepMetrics(self.iteration, self.iteration / self.batches_per_epoch, loss, mse,
                              time.perf_counter() - t0, chains[0], qs[0], chains[1], *qs[1:])
        self._check_finite(metrics)
        if self.iteration % GOOD_EVERY == 0:
            self.good.append(copy.deepcopy(self.state_dict()))
        return Step(metrics, correction)

    def _chain_start(self, idx: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's chains before inference, and their Langevin noise (None: `infer` draws it from rng).

        (a hook of DistributedTrainer, which draws the whole batch's noise and keeps its own rows)
        """
        if self.cfg.persistent:
            return self.z[idx], None
        return prior_sample(len(idx), self.cfg.model.latent_dim, rng), None

    def _chain_fits(self) -> tuple[float | None, float | None]:
        """(raw OT cost, debiased W2^2) of LATENT_FIT_N chains to the prior (None, None off rank 0)."""
        z = self.population()
        if z is None:
            return None, None
        sub = z[torch.randperm(len(z), generator=seeded_rng(self.cfg.seed, 6))[:LATENT_FIT_N]]
        return latent_ot_cost(z, n=LATENT_FIT_N, seed=self.cfg.seed), prior_w2sq(sub, seed=self.cfg.seed)

    def q_images(self) -> torch.Tensor | None:
        """The cfg.q_fit_n fixed training images of q(z^K)'s fit (a hook of DistributedTrainer)."""
        n = min(self.cfg.q_fit_n, len(self.data))
        return self.data.x[torch.randperm(len(self.data), generator=seeded_rng(self.cfg.seed, 5))[:n]]

    def q_fit(self, interrupt: ot.Interrupt | None = None) -> QFit | None:
        """metrics.q_fit on `q_images` with the current generator and K, s, sigma (None without images)."""
        if (x := self.q_images()) is None or len(x) < 4:
            return None
        return q_fit(self.generator, x.to(self.device), self.cfg.langevin, seed=self.cfg.seed, interrupt=interrupt)

    def retune(self, **settings: float) -> TrainConfig:
        """Change alpha, lr, or the Langevin step_size, steps or sigma from the next iteration on.

        The only way to change a run's settings while it goes on; returns the new config.

        Raises:
            ValueError: a setting outside RETUNABLE, or a value the config refuses (the run is unchanged).
        """
        self.cfg = retuned(self.cfg, **settings)
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr
        return self.cfg

    def rollback(self) -> int:
        """Return to the newest kept finite state (at most GOOD_EVERY iterations back); its iteration.

        That copy is then dropped (the oldest is always kept), so a run that diverges again from it is
        rolled back further the next time: up to GOOD_KEEP copies, GOOD_EVERY iterations apart.
        """
        state = self.good[-1] if len(self.good) == 1 else self.good.pop()
        self._load_state(copy.deepcopy(state))
        return self.iteration

    def correct(self, progress: ot.Progress | None = None, interrupt: ot.Interrupt | None = None) -> Correction:
        """Match the population to the fixed prior sample and move it by Eq. 10 (skipped if interrupted)."""
        t0 = time.perf_counter()
        res = self._solve(progress, interrupt)
        stopped = not res.converged and interrupt is not None and interrupt()
        if not stopped:  # an interrupted solve's prices are not a warm start to keep
            self.ot_warm = res.warm_start
        # Alg. 2's partial bijection is the paper's method; an unfinished fast solve is a fault: skip the step
        skip = stopped or (not res.converged and self.cfg.ot.solver != "paper")
        before = self.z.clone() if skip else self.z  # Eq. 10 below makes a new tensor; a skip keeps this one
        if skip and not stopped:
            warnings.warn(f"iteration {self.iteration + 1}: the OT solve did not converge, so this correction "
                          "is skipped and training goes on (raise --ot-max-iter if it keeps happening)",
                          RuntimeWarning, stacklevel=2)
        if not skip:
            self.z = ot.correct(self.z, self.targets, res.assignment[self.rows], self.cfg.alpha)  # a new tensor
        return Correction(before, res.assignment, res, time.perf_counter() - t0, skip)

    def _solve(self, progress: ot.Progress | None, interrupt: ot.Interrupt | None) -> ot.OTResult:
        """The OT solve of the correction, its answer on the CPU (a hook of DistributedTrainer)."""
        dev = self.device  # scores on the accelerator when there is one; the chains stay in host memory
        res = ot.solve(self.z.to(dev), self.targets.to(dev), self.cfg.ot,
                       generator=seeded_rng(self.cfg.seed, 4, self.iteration), warm=self._warm_on(dev), progress=progress,
                       interrupt=interrupt)
        if dev.type != "cpu":
            res = replace(res, assignment=res.assignment.cpu(), h=None if res.h is None else res.h.cpu())
        return res

    def _warm_on(self, dev: torch.device) -> ot.WarmStart | None:
        w = self.ot_warm
        if w is None or dev.type == "cpu":
            return w
        return ot.WarmStart(None if w.h is None else w.h.to(dev), w.epsilon,
                            None if w.assignment is None else w.assignment.to(dev))

    def _learn(self, x: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
        sigma = self.cfg.langevin.sigma
        for _ in range(self.cfg.learn_steps):
            err = (x - self.generator(z)).flatten(1).pow(2)         # (B, D)
            loss = err.sum(1).mean() / (2 * sigma**2)               # -log p(x | z) per example, Eq. 5
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return loss.item(), err.mean().item()

    def _learn_vae(self, x: torch.Tensor, idx: torch.Tensor, rng: torch.Generator) -> tuple[float, float]:
        for _ in range(self.cfg.learn_steps):
            nelbo, err, mu = negative_elbo(self.encoder, self.generator, x, self.cfg.langevin.sigma, rng)
            loss = nelbo.mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.z[idx] = mu.cpu()
        return loss.item(), err.mean().item()

    def _check_finite(self, m: StepMetrics) -> None:
        bad = [f"{k} not finite" for k in ("loss", "mse") if not math.isfinite(getattr(m, k))]
        spread = self._spread()  # NaN if any latent is
        if not math.isfinite(spread):
            bad.append("latents not finite")
        elif spread > RUNAWAY:
            bad.append(f"latents running away from the prior, mean z^2 = {spread:.3g} where the prior's is 1")
        if not all(torch.isfinite(p).all() for p in self.generator.parameters()):
            bad.append("parameters not finite")
        if bad:
            c = self.cfg
            raise DivergedError(
                f"training diverged at iteration {self.iteration} ({'; '.join(bad)}): lower the Langevin step "
                f"size s (now {c.langevin.step_size}) or the learning rate (now {c.lr}), or raise sigma (now "
                f"{c.langevin.sigma})")

    def population(self) -> torch.Tensor | None:
        """Every chain, in the data set's order (a hook of DistributedTrainer: on rank 0, None elsewhere)."""
        return self.z

    def _spread(self) -> float:
        """Mean z_i^2 over the population (a hook of DistributedTrainer)."""
        return float(self.z.double().pow(2).mean())

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self, callback: Callable[[Step], None] | None = None, stop: threading.Event | None = None,
            checkpoint_path: str | Path | None = None, ot_progress: ot.Progress | None = None) -> None:
        """Run until the configured epochs are done or `stop` is set, checkpointing as configured."""
        every = self.cfg.checkpoint_every
        while self.iteration < self.total_iterations and not (stop and stop.is_set()):
            step = self.step(ot_progress)
            if callback:
                callback(step)
            if checkpoint_path and every and self.iteration % every == 0:
                self.save(checkpoint_path)
        if checkpoint_path:
            self.save(checkpoint_path)

    # ---- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"config": asdict(self.cfg), "model": self.generator.state_dict(),
                "encoder": self.encoder.state_dict() if self.encoder else None,
                "optimizer": self.optimizer.state_dict(), "latents": self.z, "targets": self.targets,
                "iteration": self.iteration,
                "ot_warm": None if self.ot_warm is None else {"h": self.ot_warm.h, "epsilon": self.ot_warm.epsilon,
                                                              "assignment": self.ot_warm.assignment}}

    def save(self, path: str | Path) -> Path:
        return checkpoint.save(path, self.state_dict())

    @classmethod
    def resume(cls, path: str | Path, data: ImageData, device: str | torch.device = "cpu",
               **overrides) -> "Trainer":
        """Rebuild a trainer from a checkpoint; `overrides` replace config fields (e.g. epochs)."""
        return cls.from_state(checkpoint.load(path), data, device, str(path), **overrides)

    @classmethod
    def from_state(cls, state: dict, data: ImageData, device: str | torch.device = "cpu", where: str = "the state",
                   **overrides) -> "Trainer":
        """Rebuild a trainer from a `state_dict` (a checkpoint's, or a live run's kept one); as `resume`."""
        cfg = from_dict({**state["config"], **overrides})
        if len(state["latents"]) != len(data):
            raise checkpoint.CheckpointError(
                f"{where}: holds {len(state['latents'])} latent chains but the data set has {len(data)} images")
        tr = cls(cfg, data, device)
        tr._load_state(tr._from_checkpoint(state))
        tr.good.clear()
        tr.good.append(copy.deepcopy(tr.state_dict()))
        return tr

    def _from_checkpoint(self, state: dict) -> dict:
        """A checkpoint's state as `_load_state` takes it (a hook of DistributedTrainer: its shard)."""
        return state

    def _load_state(self, state: dict) -> None:
        """Model, optimiser, chains, targets, iteration and solver state from a `state_dict`."""
        self.generator.load_state_dict(state["model"])
        if self.encoder is not None:
            self.encoder.load_state_dict(state["encoder"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.z, self.targets, self.iteration = state["latents"], state["targets"], state["iteration"]
        self.ot_warm = None
        if state.get("ot_warm") is not None:
            self.ot_warm = ot.WarmStart(**state["ot_warm"])
        elif state.get("ot_h") is not None:  # format of lvm <= 0.1: the dual alone
            self.ot_warm = ot.WarmStart(state["ot_h"])
