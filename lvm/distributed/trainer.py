"""Alg. 1 on N processes: `Trainer`'s loop on a shard of the images and chains, one model for all.

Rank r of N holds a contiguous block of the n images and of their persistent chains
(`lvm.distributed.bounds`), all n fixed prior targets, and the same generator, wrapped in
`DistributedDataParallel`. Iteration t takes the same global batch as one process would (the
permutation seeded by (seed, epoch)); each rank runs the Langevin steps of Eq. 7 on the batch's
images it holds, with the very noise one process would draw for them (the whole batch's noise is
drawn from the iteration's generator and each rank keeps its rows), so the chains follow the
single-process run up to float rounding. The learning step minimises the global batch's mean,

    L = (1/B) sum_{i in batch} ||x_i - g(z_i)||^2 / (2 sigma^2),

each rank differentiating N / B times the sum over its own rows; DDP averages those gradients
over the N ranks, which gives grad L exactly. The correction solves the whole population's
assignment with `lvm.distributed.auction` (the scoring split over the ranks, the answer the same on
every rank) and moves each rank's chains by Eq. 10. The parameters, the optimiser and the
solver's state are therefore the same on every rank; only the images and chains are split.

Checkpoints have today's format: rank 0 gathers the chains in global order and writes one file,
so a run saved on N processes resumes on M, and `eval`, `anomaly` and the app read it unchanged.
Statistics that need the whole population (`chain_fit`, `q_fit`) are measured on rank 0 only.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from .. import checkpoint, ot
from . import auction as auction_dist, comm as distributed
from ..config import TrainConfig
from ..data import ImageData
from ..models import prior_sample
from ..trainer import Trainer, seeded_rng


class DistributedTrainer(Trainer):
    """One rank's part of a run on N processes (the process group must be initialised, `distributed.init`)."""

    def __init__(self, cfg: TrainConfig, data: ImageData, device: str | torch.device = "cpu",
                 comm: distributed.Comm | None = None):
        """`data` is the whole training set; the trainer keeps its rank's block of it."""
        if cfg.method == "vae":
            raise ValueError("the VAE trains in one process only; on several processes use method ours or abp")
        if cfg.corrects and cfg.ot.solver != "fast":
            raise ValueError(f"the {cfg.ot.solver!r} OT solver needs the whole population in one process; on "
                             "several processes use --ot-solver fast")
        super().__init__(cfg, data, device)
        self.comm = comm or distributed.Comm()
        self.n = len(data)
        start, stop = self.comm.bounds(self.n)
        self.rows = slice(start, stop)
        self.data = ImageData(data.x[start:stop].clone(), data.y[start:stop].clone())  # drop the rest
        self.z = self.z[start:stop].clone()
        q = min(cfg.q_fit_n, self.n)  # the fixed images of q_fit, kept by the rank that measures it
        self._q_images = data.x[torch.randperm(self.n, generator=seeded_rng(cfg.seed, 5))[:q]].clone() \
            if q and self.comm.rank == 0 else None
        dev = self.device
        self.ddp = DistributedDataParallel(self.generator, device_ids=[dev.index] if dev.type == "cuda" else None)
        self._batch = torch.empty(0, dtype=torch.long)  # the iteration's global batch
        self._mine = torch.empty(0, dtype=torch.long)   # positions of this rank's rows in it
        self.good.clear()
        self.good.append(copy.deepcopy(self.state_dict()))

    # ---- the batch: global indices, this rank's rows ---------------------------------------
    @property
    def batches_per_epoch(self) -> int:
        return -(-self.n // self.cfg.batch_size)

    def batch_indices(self, it: int) -> torch.Tensor:
        """This rank's rows (local indices) of iteration `it`'s global batch, in the batch's order."""
        epoch, b = divmod(it, self.batches_per_epoch)
        perm = torch.randperm(self.n, generator=seeded_rng(self.cfg.seed, 2, epoch))
        self._batch = perm[b * self.cfg.batch_size:(b + 1) * self.cfg.batch_size]
        self._mine = torch.nonzero((self._batch >= self.rows.start) & (self._batch < self.rows.stop))[:, 0]
        return self._batch[self._mine] - self.rows.start

    def _chain_start(self, idx: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's chains and their noise, drawn for the whole batch as one process draws them."""
        cfg, big_b = self.cfg, len(self._batch)
        d, k = cfg.model.latent_dim, cfg.langevin.steps
        z0 = self.z[idx] if cfg.persistent else prior_sample(big_b, d, rng)[self._mine]
        if not (cfg.langevin.noise and k):
            return z0, None
        return z0, torch.stack([torch.randn(big_b, d, generator=rng) for _ in range(k)])[:, self._mine]  # (K, b, d)

    def _learn(self, x: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
        """L2 Adam steps on the global batch's mean loss; returns the global batch's loss and MSE."""
        sigma, big_b, world = self.cfg.langevin.sigma, len(self._batch), self.comm.world
        for _ in range(self.cfg.learn_steps):
            err = (x - self.ddp(z)).flatten(1).pow(2)                # (b, D): this rank's rows
            loss = err.sum() * (world / big_b) / (2 * sigma**2)      # DDP's mean over ranks: grad of the batch mean
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        total = float(self.comm.sum(err.detach().double().sum().item(), "the batch loss")[0])
        return total / big_b / (2 * sigma**2), total / (big_b * x[0].numel())

    # ---- the whole population --------------------------------------------------------------
    def _solve(self, progress: ot.Progress | None, interrupt: ot.Interrupt | None) -> ot.OTResult:
        """The distributed auction over every rank's chains (a live run's `interrupt` is not offered here)."""
        dev = self.device
        return auction_dist.solve(self.z.to(dev), self.targets.to(dev), self.cfg.ot, self.comm,
                                  warm=self._warm_on(dev), progress=progress)

    def _spread(self) -> float:
        sq, count = self.comm.sum([float(self.z.double().pow(2).sum()), self.z.numel()], "the latents' spread")
        return sq / count

    def population(self) -> torch.Tensor | None:
        """All n chains in global order on rank 0, None on the other ranks (a collective)."""
        return self.comm.gather(self.z, "gathering the chains")

    def q_images(self) -> torch.Tensor | None:
        """The fixed images of q(z^K)'s fit on rank 0 (None elsewhere): Trainer.q_fit measures there only."""
        return self._q_images

    # ---- checkpoints: one file in today's format ---------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Rank 0 writes the state with every chain in global order; every rank must call this."""
        state = self.state_dict()
        state["latents"] = self.population()
        if self.comm.rank == 0:
            checkpoint.save(path, state)
        self.comm.barrier("writing the checkpoint")
        return Path(path)

    def _from_checkpoint(self, state: dict) -> dict:
        return {**state, "latents": state["latents"][self.rows].clone()}
