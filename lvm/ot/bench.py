"""``python -m lvm bench ot``: the OT solvers side by side, written to benchmarks/ot.md.

Each measurement runs in a fresh child process, so its peak resident memory
is its own: the solve's wall time is taken inside the child, the peak RSS is
the child's whole process (torch included, about 0.3 GB). Problems: sources
a shifted, squashed Gaussian tanh(N(0, I) + 1) or a Gaussian mixture, targets
N(0, I); warm-start sequences drift the sources by 1 % of their std between
solves and keep the targets and the solver state. The relative gap is to the
exact optimum where scipy's solver fits, otherwise the solver's certificate.

Each (n, d) also gets an `sgemm` row: one n x n x d float32 product in row
blocks into a reused buffer (torch.mm, as many threads as the solvers), the
machine's limit for a full pass of scores. Rows of the fast solver give their
achieved rate (full passes x 2 n^2 d FLOP / seconds) and their time as a
multiple of that product's. POT (`ot.emd`, the library most users reach for)
and lap run where they are installed (they are optional).
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

EXACT_FITS = 4000          # scipy / lap on the dense n x n cost: beyond this, minutes and gigabytes
POT_FITS = 8000            # POT's network simplex on the dense cost: 0.5 GB of float64 and about a minute here
SGEMM_ROWS = 4096          # row block of the reference product (a full-width block: the best rate measured here)
SOURCES = ("squashed", "mixture")


def problem(n: int, d: int, source: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(sources, targets) for one benchmark cell."""
    g = torch.Generator().manual_seed(seed)
    if source == "squashed":
        src = torch.tanh(torch.randn(n, d, generator=g) + 1.0)
    else:  # 8 components, means ~ N(0, 4 I / d) so their spread does not grow with d
        means = torch.randn(8, d, generator=g) * 2 / d**0.5
        src = means[torch.randint(8, (n,), generator=g)] + 0.3 * torch.randn(n, d, generator=g)
    return src, torch.randn(n, d, generator=g)


def drift_and_solve(src: torch.Tensor, tgt: torch.Tensor, res, g: torch.Generator):
    """One solve of the benchmarks' warm-start protocol: cold when `res` is None, else after a 1 % drift of the
    sources, from `res`'s prices, assignment, epsilon and candidate lists (as a training run's next correction).
    Returns (the sources solved, the AuctionOutput, its seconds)."""
    from . import auction as A   # looked up at each call: a benchmark may set its constants or wrap its parts

    if res is not None:
        src = src + 0.01 * src.std(0) * torch.randn(src.shape, generator=g)
    t0 = time.perf_counter()
    res = A.auction(src, tgt) if res is None else A.auction(
        src, tgt, prices=res.prices, epsilon=res.epsilon, assignment=res.assignment, lists=res.lists)
    return src, res, time.perf_counter() - t0


def _cost(src: torch.Tensor, tgt: torch.Tensor, assignment: torch.Tensor) -> float:
    m = assignment >= 0
    return float((src[m].double() - tgt[assignment[m]].double()).pow(2).sum(1).mean())


def _dense(src: torch.Tensor, tgt: torch.Tensor):
    s, t = src.double().numpy(), tgt.double().numpy()
    return (s**2).sum(1)[:, None] + (t**2).sum(1)[None, :] - 2 * s @ t.T


def run_cell(spec: dict) -> dict:
    """One solve (or warm sequence) in this process; returns time, cost, unmatched, gap, passes."""
    from lvm.config import FastOTConfig, OTConfig
    from lvm.ot import solve
    torch.set_num_threads(spec.get("threads", torch.get_num_threads()))  # the parent's (`--threads`)
    src, tgt = problem(spec["n"], spec["d"], spec["source"], spec["seed"])
    solver = spec["solver"]
    out: dict = {}
    if solver in ("fast", "paper"):  # load the compiled bidding loop and torch's thread pool before timing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            solve(*problem(64, spec["d"], spec["source"], 1), OTConfig(solver, max_iter=5))
    if solver == "sgemm":
        out.update(seconds=sgemm_seconds(src, tgt), cost=float("nan"), unmatched=0.0, passes=1.0)
    elif solver in ("scipy", "lap", "pot"):
        t0 = time.perf_counter()
        cost = _dense(src, tgt)
        if solver == "scipy":
            from scipy.optimize import linear_sum_assignment
            rows, cols = linear_sum_assignment(cost)
            assignment = torch.from_numpy(cols[rows.argsort()]).long()
        elif solver == "lap":
            import lap
            _, x, _ = lap.lapjv(cost)
            assignment = torch.from_numpy(x).long()
        else:
            import ot as pot
            n = len(src)
            plan = pot.emd(np.full(n, 1.0 / n), np.full(n, 1.0 / n), cost, numItermax=10**9)
            assignment = torch.from_numpy(plan.argmax(1)).long()
        out["seconds"] = time.perf_counter() - t0
        out.update(cost=_cost(src, tgt, assignment), unmatched=0.0, passes=float("nan"))
    elif spec.get("warm"):
        cfg = OTConfig("fast")
        res = solve(src, tgt, cfg)
        g = torch.Generator().manual_seed(spec["seed"] + 1)
        times, costs, gaps, passes = [], [], [], []
        for _ in range(spec["warm"]):  # the sources drift; the targets and the solver state stay
            src = src + 0.01 * src.std(0) * torch.randn(src.shape, generator=g)
            t0 = time.perf_counter()
            res = solve(src, tgt, cfg, warm=res.warm_start)
            times.append(time.perf_counter() - t0)
            costs.append(res.cost), gaps.append(res.gap), passes.append(res.iterations)
        out.update(seconds=statistics.median(times), cost=costs[-1], gap=max(gaps), passes=statistics.median(passes),
                   unmatched=res.unmatched)
        if spec["n"] <= EXACT_FITS:  # the optimum of the last drifted problem, outside the timing
            from scipy.optimize import linear_sum_assignment
            c = _dense(src, tgt)
            r, k = linear_sum_assignment(c)
            out["opt"] = float(c[r, k].mean())
    else:
        cfg = OTConfig(solver, max_iter=spec.get("max_iter", 200),
                       fast=FastOTConfig(coarse=spec.get("coarse", FastOTConfig.coarse)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # non-convergence is what the table reports
            t0 = time.perf_counter()
            res = solve(src, tgt, cfg, generator=torch.Generator().manual_seed(0))
            out["seconds"] = time.perf_counter() - t0
        out.update(cost=res.cost, unmatched=res.unmatched, gap=res.gap, passes=float(res.iterations))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def sgemm_seconds(src: torch.Tensor, tgt: torch.Tensor, rows: int = SGEMM_ROWS) -> float:
    """Wall time of one full n x n x d float32 product, in row blocks into one reused buffer."""
    tgt_t = tgt.T.contiguous()
    buf = torch.empty(min(rows, len(src)), len(tgt))
    torch.mm(src[:len(buf)], tgt_t, out=buf)                     # the thread pool and the buffer's pages
    t0 = time.perf_counter()
    for s in range(0, len(src), rows):
        r = min(rows, len(src) - s)
        torch.mm(src[s:s + r], tgt_t, out=buf[:r])
    return time.perf_counter() - t0


def _child(spec: dict) -> dict:
    """Run one cell in a fresh interpreter and read its JSON answer."""
    code = "import json, sys; from lvm.ot.bench import run_cell; print(json.dumps(run_cell(json.loads(sys.argv[1]))))"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    p = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _exact_cost(n: int, d: int, source: str, seed: int) -> float | None:
    if n > EXACT_FITS:
        return None
    from scipy.optimize import linear_sum_assignment
    src, tgt = problem(n, d, source, seed)
    c = _dense(src, tgt)
    r, k = linear_sum_assignment(c)
    return float(c[r, k].mean())


SOLVERS = ("sgemm", "fast", "warm", "paper", "scipy", "lap", "pot", "direct")  # "warm": the fast solver's warm-start
DEFAULT_SOLVERS = SOLVERS[:-1]  # sequence; "direct": its cold start without the multiscale (coarse) start


def plan(sizes: list[int], dims: list[int], paper_passes: int, sources: tuple[str, ...] = SOURCES,
         solvers: tuple[str, ...] = DEFAULT_SOLVERS) -> list[dict]:
    """The cells of the table, cheapest first."""
    dense = tuple(name for name, module in (("scipy", "scipy"), ("lap", "lap"), ("pot", "ot"))
                  if importlib.util.find_spec(module) is not None)
    cells = []
    for n in sizes:
        for d in dims:
            for source in sources:
                base = {"n": n, "d": d, "source": source, "seed": 0}
                if source == sources[0]:
                    cells.append({**base, "solver": "sgemm"})
                cells.append({**base, "solver": "fast"})
                cells.append({**base, "solver": "fast", "coarse": 0})
                cells.append({**base, "solver": "fast", "warm": 3})
                cells.append({**base, "solver": "paper", "max_iter": 200 if n <= 4000 else paper_passes})
                cells += [{**base, "solver": s} for s in dense if n <= (POT_FITS if s == "pot" else EXACT_FITS)]
    kind = lambda c: "warm" if c.get("warm") else "direct" if c.get("coarse") == 0 else c["solver"]  # noqa: E731
    return [c for c in cells if kind(c) in solvers]


def run(sizes: list[int], dims: list[int], runs: int, out: Path, paper_passes: int, budget: float,
        sources: tuple[str, ...] = SOURCES, solvers: tuple[str, ...] = DEFAULT_SOLVERS) -> None:
    """Measure every cell, print the table as it grows, write it to `out`."""
    head = (f"# OT solvers on this machine\n\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}; "
            f"load average at start {os.getloadavg()[0]:.2f}.\n\nCommand: `python -m lvm bench ot "
            f"--sizes {','.join(map(str, sizes))} --dims {','.join(map(str, dims))} --sources {','.join(sources)} "
            f"--solvers {','.join(solvers)} --runs {runs} --budget {budget:g} --paper-passes {paper_passes} "
            f"--threads {torch.get_num_threads()}`. "
            f"Median of {runs} runs, each in a fresh process after a 64-point warm-up solve, except cells whose first child process took over {budget:.0f} s "
            f"in all (runs = 1; a warm sequence's child also makes its cold start). `warm x3`: three solves, each after a 1 % drift of the sources, targets and solver state "
            f"kept; its time is the median of the three. Gap: relative gap of the cost to scipy's optimum "
            f"where n <= {EXACT_FITS}, else the solver's certified gap (fast only). Alg. 2 stops at 200 passes "
            f"(n <= 4,000) or {paper_passes} passes (larger n). Peak RSS is the whole child process. GFLOP/s: "
            f"full passes x 2 n^2 d / seconds (fast solver and sgemm). x sgemm: seconds / the sgemm row's seconds "
            f"(one n x n x d product, blocks of {SGEMM_ROWS} rows, measured in this run).\n\n"
            "| n | d | source | solver | runs | seconds | gap | unmatched | passes | GFLOP/s | x sgemm | peak RSS MB |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    print(head, end="", flush=True)
    rows, exact, sgemm = [], {}, {}
    for cell in plan(sizes, dims, paper_passes, sources, solvers):
        key = (cell["n"], cell["d"], cell["source"])
        if key not in exact:
            exact[key] = _exact_cost(*key, cell["seed"])
        t0 = time.perf_counter()
        cell["threads"] = torch.get_num_threads()
        results = [_child(cell)]
        if "error" not in results[0] and time.perf_counter() - t0 <= budget:  # the child's whole run
            results += [_child(cell) for _ in range(runs - 1)]
        r = results[0]
        if "error" in r:
            row = f"| {cell['n']:,} | {cell['d']} | {cell['source']} | {cell['solver']} | 1 | error: {r['error']} | | | | | | |"
        else:
            sec = statistics.median(x["seconds"] for x in results)
            opt = r.get("opt", exact[key])
            gap = (r["cost"] - opt) / opt if opt and r["unmatched"] == 0 else r.get("gap", float("nan"))
            gap_s = "–" if gap != gap else (f"{max(gap, 0):.1e}" + ("" if opt else " (cert.)"))
            name = cell["solver"] + (" warm x3" if cell.get("warm") else "") + (
                ", no coarse start" if cell.get("coarse") == 0 else "") + (
                f" ({cell['max_iter']} passes max)" if cell["solver"] == "paper" else "")
            rss = max(x["peak_rss_mb"] for x in results)
            if cell["solver"] == "sgemm":
                sgemm[key[:2]] = sec
            rate = ratio = ""
            if cell["solver"] in ("fast", "sgemm"):
                rate = f"{r['passes'] * 2 * cell['n'] ** 2 * cell['d'] / sec / 1e9:.1f}"
            if cell["solver"] == "fast" and key[:2] in sgemm:
                ratio = f"{sec / sgemm[key[:2]]:.2f}"
            row = (f"| {cell['n']:,} | {cell['d']} | {cell['source']} | {name} | {len(results)} | {sec:.2f} | "
                   f"{gap_s} | {r['unmatched']:.1%} | {r['passes']:.1f} | {rate} | {ratio} | {rss:,.0f} |")
        print(row, flush=True)
        rows.append(row)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(head + "\n".join(rows) + f"\n\nLoad average at the end: {os.getloadavg()[0]:.2f}.\n")
