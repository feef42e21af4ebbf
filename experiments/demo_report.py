"""How `experiments.demo_settings` judges a candidate demo and writes its report: the bar, a candidate's row
(ours and ABP from the same seed) and the tables."""
from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import dataclass, replace

from lvm.config import TrainConfig
from lvm.presets import DEMO
from lvm.trainer import LATENT_FIT_N

from ._report import machine, script_command

Q_N = 300                 # training images of the q(z^K) fit
LEVEL_SEEDS = range(5)    # prior-vs-prior levels: mean over these seeds
BAR_Q = 5.0               # ours' q x after N iterations at most this ...
BAR_RATIO = 0.2           # ... and at most this share of ABP's
GOAL_Q = 1.5              # the goal beyond the bar
VISIBLE = 3.0             # "visibly off the prior before the first correction": chains x above this
MSE_LAST = 40             # iterations of batch MSE averaged at the end
ALL_IMAGES = 12665        # MNIST digits 0 and 1 in the training split
# the grid as it was measured (results/demo_settings.md): the MLP of hidden width 256, batch 128, a
# correction every 4 iterations; experiments/demo_speed.py then made the demo faster from there
BASE = replace(DEMO, checkpoint_every=0, q_fit_n=Q_N, epochs=1000.0,  # epochs: never the stop
               model=replace(DEMO.model, width=32), batch_size=128, ot_every=4)


def name(cfg: TrainConfig) -> str:
    extra = "".join(f"-{k}{getattr(cfg, k)}" for k in ("lr", "learn_steps", "batch_size", "seed")
                    if getattr(cfg, k) != getattr(BASE, k))
    extra += f"-w{cfg.model.width}" if cfg.model.width != BASE.model.width else ""
    return (f"a{cfg.alpha:g}-L{cfg.ot_every}-K{cfg.langevin.steps}-s{cfg.langevin.step_size:g}-"
            f"n{cfg.data.limit or ALL_IMAGES}{extra}")


def abp_key(cfg: TrainConfig) -> str:
    """What ABP runs share: everything but alpha and L."""
    return "abp-" + name(replace(cfg, alpha=0.0, ot_every=1))


def run_key(cfg: TrainConfig) -> str:
    return abp_key(cfg) if cfg.method == "abp" else name(cfg)


@dataclass
class Row:
    cfg: TrainConfig
    ours: dict
    abp: dict

    @staticmethod
    def at(run: dict, iteration: int) -> tuple[float, float] | None:
        """(chains x, q x) at `iteration`, or None where it was not measured."""
        return next(((c, q) for it, c, q in run["trajectory"] if it == iteration), None)

    def last(self, run: dict) -> tuple[float, float]:
        return self.at(run, self.ours["target_iterations"]) or (math.nan, math.nan)

    @property
    def q(self) -> float:
        return self.last(self.ours)[1]

    @property
    def ratio(self) -> float:
        return self.q / self.last(self.abp)[1]

    @property
    def first_chains(self) -> float:
        """Chains x at the first due iteration, before the first correction."""
        return self.ours["trajectory"][0][1] if self.ours["trajectory"] else math.nan

    @property
    def first_after(self) -> float:
        """Chains x right after the first correction."""
        return self.ours["after"][0] if self.ours["after"] else math.nan

    @property
    def visible(self) -> bool:
        return self.first_chains > VISIBLE

    @property
    def falling(self) -> bool:
        """q x: the median over the last third of the run is below the median over the middle third, or
        at most GOAL_Q (settled on the prior: nothing left to fall)."""
        n = self.ours["target_iterations"]
        third = lambda lo, hi: [q for it, _, q in self.ours["trajectory"] if lo * n / 3 < it <= hi * n / 3]  # noqa: E731
        mid, end = third(1, 2), third(2, 3)
        return bool(mid and end) and (statistics.median(end) < statistics.median(mid)
                                      or statistics.median(end) <= GOAL_Q)

    @property
    def meets(self) -> bool:
        return (not self.ours["diverged"] and not self.abp["diverged"] and self.q <= BAR_Q
                and self.ratio <= BAR_RATIO and self.falling)

    @property
    def shortfall(self) -> float:
        """max(q x / 5, ratio / 0.2): the bar's q and ratio conditions hold where this is <= 1."""
        return max(self.q / BAR_Q, self.ratio / BAR_RATIO) if not self.ours["diverged"] else math.inf

    def key(self) -> tuple:
        """Choice order: meets the bar, visibly off before the first correction, alpha 0.5 (the paper's),
        more iterations/s; else the smaller shortfall."""
        if self.meets:
            return (0, not self.visible, self.cfg.alpha != 0.5, -self.ours["it_per_s"])
        return (1, self.shortfall)


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def candidates_table(rows: list[Row], chosen: Row) -> str:
    head = ("| candidate | alpha | L | K | s | images | chains x before / after 1st corr. | ours chains x "
            "| ABP chains x | ours q x | ABP q x | q ours/ABP | falling | meets bar | ours MSE | ABP MSE "
            "| ours it/s | ABP it/s | OT ms (passes) | epochs |\n|" + "---|" * 20 + "\n")
    lines = []
    for r in rows:
        (oc, oq), (ac, aq) = r.last(r.ours), r.last(r.abp)
        c = r.cfg
        flag = " **(chosen)**" if r is chosen else ""
        div = " (diverged)" if r.ours["diverged"] else ""
        lines.append(
            f"| {name(c)}{flag}{div} | {c.alpha:g} | {c.ot_every} | {c.langevin.steps} | {c.langevin.step_size:g} | "
            f"{r.ours['images']:,} | {_f(r.first_chains, '.1f')} / {_f(r.first_after, '.1f')} | {_f(oc)} | "
            f"{_f(ac)} | {_f(oq)} | {_f(aq)} | {_f(r.ratio)} | {'yes' if r.falling else 'no'} | "
            f"{'**yes**' if r.meets else 'no'} | {r.ours['mse']:.4f} | {r.abp['mse']:.4f} | "
            f"{r.ours['it_per_s']:.1f} | {r.abp['it_per_s']:.1f} | "
            f"{_f(r.ours['ot_ms'], '.0f')} ({_f(r.ours['ot_passes'], '.0f')}) | {r.ours['epochs']:.1f} |")
    return head + "\n".join(lines) + "\n"


def trajectory_table(r: Row, points: int = 12) -> str:
    n, every = r.ours["target_iterations"], r.cfg.ot_every
    its = sorted({every, 2 * every} | {max(every, round(n * k / points / every) * every) for k in range(1, points + 1)})
    head = ("| iteration | ours chains x (before corr.) | ours chains x after corr. | ours q x | ABP chains x "
            "| ABP q x | q ours/ABP |\n|---|---|---|---|---|---|---|\n")
    lines = []
    for it in its:
        o, a = r.at(r.ours, it), r.at(r.abp, it)
        k = it // every - 1
        aft = r.ours["after"][k] if 0 <= k < len(r.ours["after"]) else math.nan
        if o is not None and a is not None:
            lines.append(f"| {it} | {o[0]:.2f} | {_f(aft)} | {o[1]:.2f} | {a[0]:.2f} | {a[1]:.2f} | "
                         f"{o[1] / a[1]:.2f} |")
    return head + "\n".join(lines) + "\n"


def explain(chosen: Row, rows: list[Row]) -> str:
    c, met = chosen.cfg, [r for r in rows if r.meets]
    q, ratio, n = chosen.q, chosen.ratio, chosen.ours["target_iterations"]
    if chosen.meets:
        why = (f"It meets the bar: after {n} iterations ours' q(z^K) is {q:.2f} x the prior level (bar "
               f"{BAR_Q:g}), {ratio:.2f} of ABP's (bar {BAR_RATIO:g}), and falling. {len(met)} of {len(rows)} "
               f"candidates meet it ({', '.join(name(r.cfg) for r in met)}); among them the choice prefers one "
               f"visibly off the prior before the first correction, then the paper's alpha 0.5, then the most "
               f"iterations/s.")
    else:
        why = (f"No candidate meets the bar; this one comes closest (max(q x / {BAR_Q:g}, ratio / {BAR_RATIO:g}) "
               f"= {chosen.shortfall:.2f}): ours' q(z^K) is {q:.2f} x the prior level and {ratio:.2f} of ABP's.")
    goal = (f"It also reaches the goal, q(z^K) within {GOAL_Q:g} x of the prior level." if q <= GOAL_Q else
            f"It does not reach the goal of {GOAL_Q:g} x the prior level within {n} iterations.")
    vis = (f"Before the first correction (iteration {c.ot_every}) the chains are {chosen.first_chains:.1f} x the "
           f"prior level ({'well above' if chosen.visible else 'not above'} the {VISIBLE:g} x that makes the "
           f"first correction visible) and {chosen.first_after:.1f} x right after it.")
    speed = (f"It runs {chosen.ours['it_per_s']:.1f} iterations/s on one thread here (fits included), with a "
             f"median OT correction of {_f(chosen.ours['ot_ms'], '.0f')} ms at n = {chosen.ours['images']:,}.")
    half = [r for r in rows if r.cfg.alpha == 0.5]
    paper = ""
    if c.alpha != 0.5 and half:
        b = min(half, key=lambda r: r.shortfall)
        paper = (f"No alpha 0.5 candidate {'is chosen' if any(r.meets for r in half) else 'meets the bar'}; the "
                 f"closest, {name(b.cfg)}, has q x {b.q:.2f} at {b.ratio:.2f} of ABP's.")
    low = min((r for r in rows if r.ratio <= BAR_RATIO), key=lambda r: r.q, default=None)
    lowest = ""
    if low is not None and low is not chosen:
        fails = [w for w, bad in (("its q x is not falling", not low.falling),
                                  (f"the chains are only {low.first_chains:.1f} x before the first correction",
                                   not low.visible)) if bad]
        lowest = (f"The lowest q x at most a fifth of ABP's is {name(low.cfg)}'s, {low.q:.2f} ({low.ratio:.2f} of "
                  f"ABP's, {low.ours['it_per_s']:.1f} it/s), but {' and '.join(fails) or 'it ranks lower'}.")
    return " ".join(t for t in (why, paper, goal, vis, speed, lowest) if t)


def report(stages: list[tuple[str, list[Row]]], chosen: Row, level: dict[str, float], warm: dict[str, float],
           a: argparse.Namespace, started: str, load0: float, seconds: float) -> str:
    c = chosen.cfg
    runs = {run_key(r.cfg): r.ours for _, rows in stages for r in rows}
    runs |= {abp_key(r.cfg): r.abp for _, rows in stages for r in rows}
    train_s = sum(r["seconds"] for r in runs.values())
    text = (
        f"# Default settings of the teaching demo, by measurement\n\n"
        f"MNIST digits 0 and 1, d = 2, MLP generator of hidden width {8 * c.model.width}, {c.ot.solver} OT solver, batch size {c.batch_size}, lr "
        f"{c.lr:g}, L2 = {c.learn_steps}, sigma {c.langevin.sigma:g}, seed {c.seed}; ours and ABP (alpha = 0, "
        f"all else equal) from the same seed, {a.iterations} iterations each, one torch thread per process, "
        f"{a.jobs} processes at a time.\n\n"
        f"Machine: {machine()}; load average {load0:.2f} at the start ({started}); this invocation took "
        f"{seconds / 60:.0f} min (runs read from {a.runs} cost nothing); the runs behind these tables trained for "
        f"{train_s / 60:.0f} min in all. Command: `{script_command()}`.\n\n"
        f"**chains x**: exact OT cost of {LATENT_FIT_N} persistent chains (before the correction) to as many prior "
        f"draws, over the prior-vs-prior level {level['chains']:.4f} (mean of {len(LEVEL_SEEDS)} seeds). **q x**: "
        f"K Langevin steps from fresh noise on {Q_N} fixed training images with the current generator, exact OT "
        f"cost to {Q_N} prior draws, over the level {level['q']:.4f}. Figures after the last iteration unless "
        f"said otherwise. **Bar**: ours' q x <= {BAR_Q:g}, q ours/ABP <= {BAR_RATIO:g}, falling (median of q x "
        f"over the run's last third below that over its middle third, or at most {GOAL_Q:g}: settled on the prior). MSE: batch MSE, mean of the last "
        f"{MSE_LAST} iterations, pixels in [0, 1]. it/s: iterations over the wall time of `Trainer.step`, fits "
        f"included (ABP is measured every gcd(L) iterations, so it pays more fits than a live run). OT ms: median "
        f"wall time of one correction (median auction passes beside it). Timings on a shared 2-core machine are "
        f"noisy: compare them within one table.\n\n"
        f"Warm OT solve, synthetic, n = {warm['n']:,}, d = 2, fast solver (a shifted, squashed cloud corrected by "
        f"Eq. 10 and jittered between solves): median {warm['ms']:.0f} ms, {warm['passes']:.0f} passes.\n\n"
        f"## Chosen: {name(c)}\n\nalpha {c.alpha:g}, L = {c.ot_every}, K = {c.langevin.steps}, s = "
        f"{c.langevin.step_size:g}, {chosen.ours['images']:,} images, batch size {c.batch_size}, lr {c.lr:g}. "
        f"{explain(chosen, [r for _, rows in stages for r in rows])}\n\n")
    for title, rows in stages:
        text += f"## {title}\n\n{candidates_table(rows, chosen)}\n"
    return text + f"## Trajectory of the chosen setting\n\n{trajectory_table(chosen)}"
