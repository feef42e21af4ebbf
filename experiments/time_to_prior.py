"""How long the teaching demo takes from Start until q(z^K) sits on the prior (the app's Train view).

"On the prior": the exact OT cost between 500 latents of q(z^K) (taken before the
correction) and 500 prior draws is within 10 % of the same statistic between two
independent prior samples (lvm.session.ON_PRIOR). Each run is a real `Session`,
its one training thread with one torch thread, as the app runs it, without the
browser. The runs are `lvm.session.DEMO` (the app's default run) and variants of it that set
alpha, L and K (and at most one more setting) with `dataclasses.replace`. Usage:

    python -m experiments.time_to_prior [--seconds 90] [--configs demo,...] [--out results/time_to_prior.md]

Prints a markdown table: the ratio fit / prior level at 30, 60, 90 s and the
first time it was <= 1.1 after a full epoch.
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


def variant(alpha: float, every: int, steps: int, step_size: float | None = None, **train) -> TrainConfig:
    """DEMO with alpha, L and K (and optionally s and other TrainConfig fields) set."""
    langevin = replace(DEMO.langevin, steps=steps, step_size=step_size or DEMO.langevin.step_size)
    return replace(DEMO, alpha=alpha, ot_every=every, langevin=langevin, **train)


CONFIGS = {  # every name spells out its alpha, L and K: none inherits them from DEMO unseen
    "demo": DEMO,                                           # alpha 0.5, L = 8, K = 20
    "alpha05-L4-K20": variant(0.5, 4, 20),
    "alpha1-L4-K20": variant(1.0, 4, 20),
    "alpha1-L1-K20": variant(1.0, 1, 20),
    "alpha1-L1-K5": variant(1.0, 1, 5),
    "alpha1-L1-K10": variant(1.0, 1, 10),                   # the app's default until DEMO
    "alpha1-L1-K10-s05": variant(1.0, 1, 10, step_size=0.05),
    "alpha1-L1-K10-lr3": variant(1.0, 1, 10, lr=3e-3),
    "alpha1-L1-K10-L2x3": variant(1.0, 1, 10, learn_steps=3),
    "alpha09-L1-K10": variant(0.9, 1, 10),
}


def run(cfg: TrainConfig, seconds: float) -> dict:
    s = Session(cfg)
    marks, out = [30.0, 60.0, 90.0], {}
    s.start()
    try:
        while True:
            time.sleep(0.25)
            v = s.view()
            fits = [(f.seconds, f.metrics["chain_fit"]) for f in v.frames if "chain_fit" in f.metrics]
            for m in marks:
                if m not in out and v.seconds >= m and fits:
                    out[m] = fits[-1][1] / v.prior_fit
            if v.seconds >= seconds or v.state != "running":
                break
    finally:
        s.stop()
    v = s.view()
    after = [r["chain_fit"] / v.prior_fit for r in v.records
             if "chain_fit" in r and v.seconds_to_prior is not None and r["elapsed"] > v.seconds_to_prior]
    out["stays"] = sum(x <= ON_PRIOR for x in after) / len(after) if after else None
    out["last_median"] = float(np.median([r["chain_fit"] / v.prior_fit for r in v.records
                                          if "chain_fit" in r and r["elapsed"] >= seconds * 2 / 3] or [np.nan]))
    out.update(to_prior=v.seconds_to_prior, iterations=v.iteration, epochs=v.epoch, state=v.state,
               message=v.message)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=90.0, help="training seconds per run")
    ap.add_argument("--configs", default="demo,alpha05-L4-K20,alpha1-L4-K20,alpha1-L1-K20,alpha1-L1-K10,alpha09-L1-K10",
                    help=f"comma-separated names of {', '.join(CONFIGS)}")
    ap.add_argument("--out", default="results/time_to_prior.md")
    a = ap.parse_args()
    unknown = [n for n in a.configs.split(",") if n not in CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    rows = []
    head = (f"# Time until q(z^K) sits on the prior\n\n{platform.machine()}, {os.cpu_count()} CPUs, torch "
            f"{torch.__version__}, one training thread with one torch thread (as in the app), no browser; "
            f"MNIST digits 0 and 1, d = 2, MLP generator, {DEMO.ot.solver} OT solver, seed 0. Command: `python -m "
            f"experiments.time_to_prior --seconds {a.seconds:g} --configs {a.configs}`. Load average at start {os.getloadavg()[0]:.2f}.\n\n"
            f"Ratio: OT cost of 500 latents of q(z^K) to 500 prior draws over the same between two prior samples; "
            f"on the prior means <= {ON_PRIOR}.\n\n"
            "'Stays': the share of the later corrections at which it was on the prior again; 'last third': the "
            "median ratio over the run's last third.\n\n"
            "| config | images | alpha | L | K | s | after 30 s | after 60 s | after 90 s | on the prior after | "
            "stays | last third | iterations | epochs |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    print(head, end="", flush=True)
    for name in a.configs.split(","):
        cfg = CONFIGS[name]
        r = run(cfg, a.seconds)
        cell = lambda m: f"{r[m]:.2f}" if m in r else "–"  # noqa: E731
        row = (f"| {name} | {cfg.data.limit:,} | {cfg.alpha} | {cfg.ot_every} | {cfg.langevin.steps} | "
               f"{cfg.langevin.step_size} | {cell(30.0)} | {cell(60.0)} | {cell(90.0)} | "
               f"{'%.1f s' % r['to_prior'] if r['to_prior'] else 'not within ' + str(a.seconds) + ' s'} | "
               f"{'–' if r['stays'] is None else '%.0f %%' % (100 * r['stays'])} | {r['last_median']:.2f} | "
               f"{r['iterations']:,} | {r['epochs']:.1f} |")
        print(row + (f" ({r['state']}: {r['message']})" if r["message"] else ""), flush=True)
        rows.append(row)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(head + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
