"""Where one iteration of the teaching demo spends its time, phase by phase (a printed table).

    python -m benchmarks.demo_step [--iterations 200] [--threads 1] [--limit N]

Runs lvm.presets.DEMO (ours) with `Trainer.step` and times each phase by wrapping the functions it
calls: Langevin inference (Eq. 7), the chains' fit, the OT correction, learning, the q(z^K) fit, and
the decoded grid a live session draws every L iterations. The first L iterations are warm-up.
"""
from __future__ import annotations

import argparse
import collections
import platform
import time
from dataclasses import replace

import torch

from lvm import langevin, trainer as trainer_mod
from lvm.data import load
from lvm.presets import DEMO
from lvm.live.session import decoded
from lvm.trainer import Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=DEMO.data.limit)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = replace(DEMO, data=replace(DEMO.data, limit=a.limit))
    tr = Trainer(cfg, load(cfg.data, "train"))
    spent: dict[str, float] = collections.defaultdict(float)
    calls: dict[str, int] = collections.defaultdict(int)
    timing = [False]

    def timed(name, fn):
        def wrapper(*args, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                if timing[0]:
                    spent[name] += time.perf_counter() - t0
                    calls[name] += 1
        return wrapper

    langevin.infer = timed("langevin (batch)", langevin.infer)
    trainer_mod.langevin = langevin
    trainer_mod.latent_ot_cost = timed("chains' fit", trainer_mod.latent_ot_cost)
    tr.correct = timed("OT correction", tr.correct)
    tr._learn = timed("learning", tr._learn)
    tr.q_fit = timed("q(z^K) fit", tr.q_fit)
    warm = cfg.ot_every
    for _ in range(warm):
        tr.step()
    timing[0] = True
    t0 = time.perf_counter()
    for _ in range(a.iterations):
        s = tr.step()
        if s.metrics.chain_fit is not None:
            timed("decoded grid", decoded)(tr.generator, cfg.model.latent_dim)
    total = time.perf_counter() - t0
    print(f"DEMO on {len(tr.data)} images, {a.iterations} iterations after {warm} warm-up, {a.threads} thread(s), "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"total {total:.2f} s: {a.iterations / total:.2f} iterations/s\n")
    print("| phase | calls | ms per call | ms per iteration | share |")
    print("|---|---|---|---|---|")
    for k, v in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {calls[k]} | {1000 * v / calls[k]:.1f} | {1000 * v / a.iterations:.1f} | {v / total:.0%} |")
    rest = total - sum(spent.values())
    print(f"| rest | | | {1000 * rest / a.iterations:.1f} | {rest / total:.0%} |")


if __name__ == "__main__":
    main()
