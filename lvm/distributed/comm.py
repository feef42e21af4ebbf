"""torch.distributed for training on N processes: the process group, the shards, the collectives.

``torchrun --standalone --nproc_per_node N -m lvm train ...`` starts N processes with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in their environment; `init` joins them into
one process group. On CPU the backend is gloo; with CUDA it is ``cpu:gloo,cuda:nccl``: NCCL carries
the gradients (CUDA tensors), gloo the host arrays of the OT correction and the checkpoint gather.

Shards. The n images and their chains are split into contiguous blocks in rank order, rank r
holding rows [floor(n r / N), floor(n (r + 1) / N)) (`bounds`), so that concatenating the blocks in
rank order gives the global order back (what a checkpoint stores).

Collectives. Every collective here is a method of `Comm` that waits at most the process group's
timeout (`TIMEOUT_S`, or ``$LVM_DIST_TIMEOUT`` seconds) and turns a failure into `CollectiveError`,
whose message names the rank that saw it. Sums meant to steer control flow (`Comm.sum`) are
all-gathered and added in rank order on every rank, so every rank reaches bit-identical values and
takes the same branch; a plain all-reduce does not promise that.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import sys
from collections.abc import Iterator

import numpy as np
import torch
import torch.distributed as dist

# newer torch names it all_gather_single and deprecates all_gather_into_tensor
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
TIMEOUT_S = 600.0  # longest wait in one collective: longer than any rank-0-only work (a checkpoint, a cold start)


class CollectiveError(RuntimeError):
    """A collective failed or timed out: another rank failed or stopped answering (its message names it)."""


def launched() -> bool:
    """Whether this process is one of several started by torchrun (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether a process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_lead() -> bool:
    """Rank 0 of a process group, or a single process: the one that logs, shows progress and writes files."""
    return not active() or dist.get_rank() == 0


def bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """[start, stop) of rank's block of n rows: contiguous blocks in rank order, sizes differing by at most one."""
    return n * rank // world, n * (rank + 1) // world


def timeout_s() -> float:
    return float(os.environ.get("LVM_DIST_TIMEOUT", TIMEOUT_S))


def init(timeout: float | None = None) -> Comm:
    """Join the processes torchrun started (env:// rendezvous); gloo on CPU, NCCL for CUDA tensors.

    Returns:
        The `Comm` of this process; `Comm.device` is cuda:LOCAL_RANK when CUDA is there, else cpu.
    """
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(seconds=timeout or timeout_s()))
    return Comm()


def close() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class Comm:
    """This rank's view of the process group: its rank, the world size, and the collectives the run uses."""

    def __init__(self) -> None:
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        cuda = torch.cuda.is_available()
        self.device = torch.device(f"cuda:{torch.cuda.current_device()}") if cuda else torch.device("cpu")

    def __repr__(self) -> str:
        return f"rank {self.rank} of {self.world}"

    def bounds(self, n: int) -> tuple[int, int]:
        """This rank's block of n rows (see the module docstring)."""
        return bounds(n, self.world, self.rank)

    @contextlib.contextmanager
    def _named(self, what: str) -> Iterator[None]:
        try:
            yield
        except (RuntimeError, ValueError) as e:  # gloo / NCCL report a dead or silent peer as one of these
            if isinstance(e, CollectiveError):
                raise
            raise CollectiveError(f"{self}: {what} failed or waited past the {timeout_s():.0f} s timeout: another "
                                  f"rank failed or stopped answering (look for its message): {e}") from e

    # ---- collectives on host arrays --------------------------------------------------------
    def allgather(self, a: np.ndarray, what: str = "all-gather") -> np.ndarray:
        """Every rank's array, concatenated along axis 0 in rank order (shapes may differ on axis 0 only)."""
        a = np.ascontiguousarray(a)
        with self._named(what):
            counts = torch.zeros(self.world, dtype=torch.int64)
            _all_gather(counts, torch.tensor([len(a)], dtype=torch.int64))
            most = int(counts.max())
            buf = torch.zeros((most, *a.shape[1:]), dtype=torch.from_numpy(a).dtype)
            buf[:len(a)] = torch.from_numpy(a)
            out = torch.empty((self.world * most, *a.shape[1:]), dtype=buf.dtype)
            _all_gather(out, buf)
        parts = out.view(self.world, most, *a.shape[1:]).numpy()
        return np.concatenate([parts[r, :int(c)] for r, c in enumerate(counts)])

    def sum(self, values: np.ndarray | list[float] | float, what: str = "sum") -> np.ndarray:
        """Sum over ranks of each value, in float64, bit-identical on every rank (added in rank order)."""
        v = np.atleast_1d(np.asarray(values, dtype=np.float64))
        return self.allgather(v[None, :], what).sum(0)

    def gather(self, t: torch.Tensor, what: str = "gather") -> torch.Tensor | None:
        """The concatenation in rank order of every rank's host tensor, on rank 0 (None elsewhere)."""
        with self._named(what):
            counts = torch.zeros(self.world, dtype=torch.int64)
            _all_gather(counts, torch.tensor([len(t)], dtype=torch.int64))
            most = int(counts.max())
            buf = torch.zeros((most, *t.shape[1:]), dtype=t.dtype)
            buf[:len(t)] = t.detach().cpu()
            parts = [torch.empty_like(buf) for _ in range(self.world)] if self.rank == 0 else None
            dist.gather(buf, parts, dst=0)
        if self.rank != 0:
            return None
        return torch.cat([p[:int(c)] for p, c in zip(parts, counts)])

    def broadcast(self, t: torch.Tensor, what: str = "broadcast") -> torch.Tensor:
        """Rank 0's host tensor on every rank (the same shape and dtype must be passed everywhere)."""
        t = t.detach().cpu().contiguous().clone()
        with self._named(what):
            dist.broadcast(t, src=0)
        return t

    def barrier(self, what: str = "barrier") -> None:
        with self._named(what):
            dist.barrier()


@contextlib.contextmanager
def naming_the_rank() -> Iterator[None]:
    """Prefix any error leaving the block with this process's rank on stderr, then let it go on.

    torchrun stops the other ranks as soon as one exits with an error; the ones blocked in a
    collective with the failed rank raise `CollectiveError` within the timeout, so the job ends
    with a message naming the rank that failed first, never a hang.
    """
    try:
        yield
    except BaseException as e:
        if active() and not isinstance(e, (KeyboardInterrupt, SystemExit)):
            print(f"lvm: rank {dist.get_rank()} of {dist.get_world_size()} failed: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)
        raise
