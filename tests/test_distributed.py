"""Training on several processes (lvm.distributed, lvm.distributed.auction, lvm.distributed.trainer), on gloo.

Real torch.distributed processes: two ranks started by `torch.multiprocessing`, joined by the same
env:// rendezvous torchrun uses. They are forked where the platform allows (the test process has
imported torch and lvm already; a spawned rank spends ~10 s of a loaded 2-core machine on imports).
One start serves the OT and the training checks (a module fixture); the single-process side runs
here, in the test process, on one thread like each rank.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from scipy.optimize import linear_sum_assignment

from lvm import distributed
from lvm.ot.auction import auction
from lvm.config import DataConfig, FastOTConfig, LangevinConfig, ModelConfig, OTConfig, TrainConfig
from lvm.data import ImageData, load

pytestmark = pytest.mark.distributed

MNIST01 = DataConfig(name="mnist", classes=(0, 1), limit=400)  # the `mnist01` fixture: 4 batches of 100
# 12 iterations a half, a correction every 4; a tight tol, so both solvers reach the (unique) optimum
CFG = TrainConfig(method="ours", alpha=0.5, ot_every=4, batch_size=100, epochs=3, seed=0, checkpoint_every=0,
                  q_fit_n=100, data=MNIST01, model=ModelConfig(latent_dim=2, arch="mlp"),
                  langevin=LangevinConfig(steps=10, step_size=0.1), ot=OTConfig(fast=FastOTConfig(tol=1e-6)))
HALF, WHOLE = 12, 24
OT_PROBLEMS = [(300, 8, 1e-7), (1000, 16, 1e-3)]  # (n, d, tol): an optimum to reach, a gap to certify
WARM = (1200, 16, 1e-4)                            # a warm solve from kept candidate lists


def _drifted(src: torch.Tensor) -> torch.Tensor:
    return src + 0.01 * src.std() * torch.randn(src.shape, generator=torch.Generator().manual_seed(9))


def _problem(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * 0.8 + 0.3, torch.randn(n, d, generator=g)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int, timeout: float) -> distributed.Comm:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    return distributed.init(timeout)


def _spawn(fn, world: int, *args) -> None:
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(fn, args=(world, _free_port(), *args), nprocs=world, start_method=method)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """Both ranks: the OT problems, then a 2-process run and two resumes (2 -> 2 and 1 -> 2)."""
    from lvm import commands
    from lvm.distributed import auction as auction_dist

    comm = _join(rank, world, port, 120)
    with distributed.naming_the_rank():
        found = {}
        for n, d, tol in OT_PROBLEMS:
            src, tgt = _problem(n, d)
            start, stop = comm.bounds(n)
            found[(n, d)] = auction_dist.auction(src[start:stop], tgt, comm, tol=tol, jacobi=True)  # rounds too
        src, tgt = _problem(*WARM[:2])                 # a warm solve after a 1 % drift, from the kept lists
        moved = _drifted(src)
        start, stop = comm.bounds(len(src))
        first = auction_dist.auction(src[start:stop], tgt, comm, tol=WARM[2])
        found[WARM[:2]] = auction_dist.auction(moved[start:stop], tgt, comm, tol=WARM[2], prices=first.prices,
                                               epsilon=first.epsilon, assignment=first.assignment, kept=first.lists)
        torch.save({f"{n}x{d}": (o.assignment, o.prices, o.primal, o.dual, o.rel_gap, o.converged, o.passes,
                                 o.rounds) for (n, d), o in found.items()}, f"{out}/ot-rank{rank}.pt")
        data = load(MNIST01, "train")
        commands.fit(CFG, data, Path(out, "two"))                                  # 0 -> 12 on 2
        if rank == 0:
            shutil.copytree(Path(out, "two"), Path(out, "two-half"))
        comm.barrier()
        commands.fit(replace(CFG, epochs=6), data, Path(out, "two"), resume=True)      # 12 -> 24 on 2
        commands.fit(replace(CFG, epochs=6), data, Path(out, "one-two"), resume=True)  # 1's 12 -> 24 on 2
        commands.fit(replace(CFG, epochs=1000), data, Path(out, "budget"), max_seconds=1e-3)  # rank 0's clock
    distributed.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist01: ImageData) -> Path:
    """Run directories: `one` (1 process, 0 -> 24, resumed at 12), `two` (2 processes, the same), `one-two`
    (1 process to 12, then 2), `two-one` (2 processes to 12, then 1); the OT answers of both ranks."""
    from lvm.distributed import auction  # noqa: F401 - imported here, so that the forked ranks have it
    from lvm.commands import fit

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("dist")
        fit(CFG, mnist01, out / "one")
        shutil.copytree(out / "one", out / "one-two")
        _spawn(_worker, 2, str(out))
        shutil.copytree(out / "two-half", out / "two-one")
        for name in ("one", "two-one"):
            fit(replace(CFG, epochs=6), mnist01, out / name, resume=True)
    finally:
        torch.set_num_threads(threads)
    return out


def _losses(run: Path) -> np.ndarray:
    return np.array([json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()])


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=True)


def test_two_processes_train_the_one_process_model(runs: Path) -> None:
    one, two = _losses(runs / "one"), _losses(runs / "two")
    assert len(one) == len(two) == WHOLE                     # one record per iteration: rank 0 logs alone
    np.testing.assert_allclose(two, one, rtol=1e-4)          # the global batch's loss, iteration by iteration
    assert one[-1] < 0.5 * one[0]                            # and the model did learn
    a, b = _state(runs / "one"), _state(runs / "two")
    assert b["iteration"] == WHOLE and b["latents"].shape == a["latents"].shape
    for name, p in a["model"].items():
        torch.testing.assert_close(b["model"][name], p, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(b["latents"], a["latents"], atol=1e-3, rtol=1e-3)  # chains, corrected 6 times
    assert torch.equal(b["ot_warm"]["assignment"], a["ot_warm"]["assignment"])
    records = [json.loads(line) for line in (runs / "two" / "metrics.jsonl").read_text().splitlines()]
    due = [r for r in records if "ot_gap" in r]
    assert len(due) == WHOLE // CFG.ot_every and all(r["ot_converged"] == 1.0 for r in due)
    assert all("chain_fit" in r and "q_fit" in r for r in due)  # measured on rank 0


def test_a_wall_clock_budget_stops_every_rank_at_the_same_iteration(runs: Path) -> None:
    assert _state(runs / "budget")["iteration"] == 1 and len(_losses(runs / "budget")) == 1  # no hang, one stop


@pytest.mark.parametrize("run", ["one-two", "two-one"])
def test_checkpoint_resumes_on_another_number_of_processes(runs: Path, run: str) -> None:
    ref, got = _state(runs / "one"), _state(runs / run)
    assert got.keys() == ref.keys() and got["iteration"] == WHOLE
    for name, p in ref["model"].items():
        torch.testing.assert_close(got["model"][name], p, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(got["latents"], ref["latents"], atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(_losses(runs / run), _losses(runs / "one"), rtol=1e-4)


@pytest.mark.parametrize("n,d,tol", OT_PROBLEMS)
def test_distributed_auction_is_certified_and_matches_one_process(runs: Path, n: int, d: int, tol: float) -> None:
    ranks = [torch.load(runs / f"ot-rank{r}.pt", weights_only=True)[f"{n}x{d}"] for r in (0, 1)]
    assignment, prices, primal, dual, gap, converged, _, rounds = ranks[0]
    assert torch.equal(ranks[1][0], assignment) and torch.equal(ranks[1][1], prices)  # identical on every rank
    assert converged and gap <= tol and dual >= primal
    assert rounds > 0  # a cold start bids in Jacobi rounds (each rank its own rows) before the end game
    assert torch.equal(assignment.sort().values, torch.arange(n))                       # a permutation
    src, tgt = (t.double().numpy() for t in _problem(n, d))
    cost = ((src[:, None] - tgt[None]) ** 2).sum(-1)                                    # (n, n)
    rows, cols = linear_sum_assignment(cost)
    best, got = cost[rows, cols].mean(), cost[np.arange(n), assignment.numpy()].mean()
    lower = (src**2).sum(1).mean() + (tgt**2).sum(1).mean() - 2 * dual / n              # the certified bound
    assert lower <= best + 1e-9 and best - 1e-9 <= got <= best * (1 + gap) + 1e-9
    if tol < 1e-6:  # the optimum of a continuous random problem is unique: every solver must find it
        assert np.array_equal(assignment.numpy(), cols)
        one = auction(*_problem(n, d), tol=tol)
        assert torch.equal(one.assignment, assignment)


def test_distributed_warm_start_keeps_the_candidate_lists(runs: Path) -> None:
    """After a 1 % drift the kept lists spare most of a pass, and the answer keeps its certificate."""
    n, d, tol = WARM
    ranks = [torch.load(runs / f"ot-rank{r}.pt", weights_only=True)[f"{n}x{d}"] for r in (0, 1)]
    assignment, prices, primal, dual, gap, converged, passes, _ = ranks[0]
    assert torch.equal(ranks[1][0], assignment) and torch.equal(ranks[1][1], prices)
    assert converged and gap <= tol and torch.equal(assignment.sort().values, torch.arange(n))
    assert passes < 0.5                                  # a fresh start scores every row once or more
    src, tgt = _problem(n, d)
    moved, tgt = _drifted(src).double().numpy(), tgt.double().numpy()
    cost = ((moved[:, None] - tgt[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    best, got = cost[rows, cols].mean(), cost[np.arange(n), assignment.numpy()].mean()
    assert best - 1e-9 <= got <= best * (1 + gap) + 1e-9


def _hanging_worker(rank: int, world: int, port: int) -> None:
    comm = _join(rank, world, port, 3)
    with distributed.naming_the_rank():
        if rank == 1:
            time.sleep(60)  # a rank that stops answering
        comm.sum(1.0, "the test's sum")


def test_a_silent_rank_ends_the_job_with_a_message_naming_the_rank(capfd) -> None:
    t0 = time.perf_counter()
    with pytest.raises(mp.ProcessRaisedException, match="CollectiveError"):
        _spawn(_hanging_worker, 2)
    assert time.perf_counter() - t0 < 40                   # the 3 s timeout, not the sleeping rank, ends it
    err = capfd.readouterr().err
    assert "rank 0 of 2 failed: CollectiveError" in err and "the test's sum" in err


def test_only_train_runs_under_torchrun(monkeypatch, capsys) -> None:
    from lvm.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets; no process group is joined for a refused command
    assert main(["eval", "runs/none/checkpoint.pt"]) == 2
    assert "only `lvm train` runs on several processes" in capsys.readouterr().err
