"""How long the teaching demo takes from Start until the model's own q(z^K) sits on the prior (the Train view).

The statistic is the honest one (lvm.metrics.q_ot_cost, StepMetrics.q_fit): K Langevin steps from fresh
N(0, I) noise on a fixed subsample of training images with the current generator, then the exact OT cost
of those latents to as many prior draws, as a multiple of the same statistic between two prior samples.
"On the prior" is <= lvm.session.ON_PRIOR (1.5) times that level. The persistent chains' fit is reported
beside it, but a correction moves the chains onto prior points by construction, so it proves little.

Each run is what the app runs from Start: two real `Session`s, ours and ABP beside it (alpha 0, same
data, seed and settings, never ahead of ours), in their own training threads taking turns, one torch thread
each, no browser.

    python -m experiments.time_to_prior [--seconds 90] [--configs demo,...] [--out results/time_to_prior.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lvm.config import TrainConfig
from lvm.session import DEMO, ON_PRIOR, Session

MARKS = (30.0, 60.0, 90.0)


def variant(alpha: float, every: int, steps: int, step_size: float | None = None, **train) -> TrainConfig:
    """DEMO with alpha, L and K (and optionally s and other TrainConfig fields) set."""
    langevin = replace(DEMO.langevin, steps=steps, step_size=step_size or DEMO.langevin.step_size)
    return replace(DEMO, alpha=alpha, ot_every=every, langevin=langevin, **train)


CONFIGS = {  # every name spells out its alpha, L and K: none inherits them from DEMO unseen
    "demo": DEMO,                            # alpha 1, L = 8, K = 20, hidden 128 (results/demo_speed.md)
    "alpha05-L4-K20": variant(0.5, 4, 20),   # the paper's alpha
    "alpha1-L8-K10": variant(1.0, 8, 10),    # twice as fast per iteration
    "alpha1-L1-K10": variant(1.0, 1, 10),    # the app's default before this statistic: chains on the prior by construction
}


def _q(v) -> list[tuple[float, float]]:
    """(training seconds, q(z^K) fit / its prior level) at every frame that has it."""
    return [(f.seconds, f.metrics["q_fit"] / v.q_prior_fit) for f in v.frames if "q_fit" in f.metrics]


def run(cfg: TrainConfig, seconds: float) -> dict:
    ours, abp = Session(cfg), Session(replace(cfg, method="abp", alpha=None))
    abp.keep_pace(ours)  # as the app has it: ABP never runs ahead of ours
    out: dict = {}
    for s in (ours, abp):
        s.start()
    try:
        while True:
            time.sleep(0.25)
            v, a = ours.view(), abp.view()
            for m in MARKS:
                if m not in out and v.seconds >= m and _q(v) and _q(a):
                    chains = [f.metrics["chain_fit"] / v.prior_fit for f in v.frames if "chain_fit" in f.metrics]
                    out[m] = (_q(v)[-1][1], _q(a)[-1][1], chains[-1])
            if v.seconds >= seconds or v.state != "running":
                break
    finally:
        for s in (ours, abp):
            s.stop()
    v, a = ours.view(), abp.view()
    last = [q for t, q in _q(v) if t >= seconds * 2 / 3]
    out.update(to_prior=v.seconds_to_prior, last_median=float(np.median(last)) if last else float("nan"),
               iterations=v.iteration, abp_iterations=a.iteration, epochs=v.epoch, message=v.message)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=90.0, help="training seconds of ours per run")
    ap.add_argument("--configs", default="demo", help=f"comma-separated names of {', '.join(CONFIGS)}")
    ap.add_argument("--out", default="results/time_to_prior.md")
    a = ap.parse_args()
    unknown = [n for n in a.configs.split(",") if n not in CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    head = (f"# Time until the model's own q(z^K) sits on the prior\n\n{platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__}; ours and ABP beside it, each in its session thread with one torch thread "
            f"(as the app runs them from Start), no browser; MNIST digits 0 and 1, d = 2, MLP generator, seed 0. "
            f"Command: `python -m experiments.time_to_prior --seconds {a.seconds:g} --configs {a.configs}`. Load "
            f"average at the start {os.getloadavg()[0]:.2f}.\n\n"
            "Each cell: the OT cost of q(z^K) (K Langevin steps from fresh noise on 300 fixed training images) to "
            "300 prior draws, as a multiple of the same between two prior samples; ours / ABP, then ours' "
            f"persistent chains in brackets. 'On the prior' means <= {ON_PRIOR:g}; 'last third': ours' median over "
            "the run's last third.\n\n"
            "| config | images | alpha | L | K | s | " + " | ".join(f"after {m:g} s" for m in MARKS) +
            " | ours on the prior after | last third | iterations (ours, ABP) |\n"
            "|---|---|---|---|---|---|" + "---|" * len(MARKS) + "---|---|---|\n")
    print(head, end="", flush=True)
    rows = []
    for name in a.configs.split(","):
        cfg = CONFIGS[name]
        r = run(cfg, a.seconds)
        cell = lambda m: f"{r[m][0]:.1f} / {r[m][1]:.1f} ({r[m][2]:.1f})" if m in r else "–"  # noqa: E731
        images = f"{cfg.data.limit:,}" if cfg.data.limit else "all"
        row = (f"| {name} | {images} | {cfg.alpha:g} | {cfg.ot_every} | {cfg.langevin.steps} | "
               f"{cfg.langevin.step_size:g} | " + " | ".join(cell(m) for m in MARKS) + " | "
               f"{'%.1f s' % r['to_prior'] if r['to_prior'] else 'not within %g s' % a.seconds} | "
               f"{r['last_median']:.2f} | {r['iterations']:,}, {r['abp_iterations']:,} |")
        print(row + (f" ({r['message']})" if r["message"] else ""), flush=True)
        rows.append(row)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(head + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
