"""Issue 32, step 1: AUPRC against training budget (150, 600, 1,500 CPU seconds) for ABP, ours and the VAE.

    python -m experiments.anomaly_curve [--digits 4,9] [--methods abp,ours-a0.1,ours-a0.5,ours-a0.3-r50,vae]
                                        [--budgets 150,600,1500] [--seeds 0,1]

Each run trains on ALL the normal MEG training images of its digit (about 50,000; the recipe of
`experiments.anomaly_budget` otherwise: K = 5 Langevin steps per visit, d = 16 conv generator, width 32,
batch 128, lr 0.001, sigma 0.3, s 0.1, q(z^K) fits off) in this process, one torch thread, until its
iterations have used each budget in CPU seconds (time.process_time around each `Trainer.step`, so a crowded
or paused process loses no budget). The smaller budgets are checkpoints of the largest run: when a run passes
150 CPU s its state is copied to ckpt-150.pt and scored, then it trains on to 600, and so on. Methods:

    abp             alpha 0
    ours-a0.1       alpha 0.1, a warm-started correction of the whole population every 300 iterations (0.77 epoch)
    ours-a0.5       alpha 0.5, the same schedule
    ours-a0.3-r50   alpha 0.3 and, after each correction, 50 regression passes: Adam steps on random batches
                    of the corrected pairs (z_i, x_i) of the whole population (the authors' public recipe:
                    alpha 0.3, regression passes after each correction); their CPU time is in the budget
    vae             the VAE with the same decoder (sigma 0.3)

Order: breadth first (every run to the first budget, scored, then every run to the second, ...), so a
stopped study leaves complete low-budget cells. Scoring is `lvm anomaly --checkpoint`'s (K = 100 from the
prior, one chain, seed 0, s 0.1) on S0, the seeded 2,000 test images of `lvm anomaly --seed 0 --n 2000`.
Runs go to runs/anomaly_curve/METHOD-dD-sS/ (checkpoint.pt and progress.json every 100 iterations and at
every budget; a killed run resumes where its last checkpoint was); the tables to results/anomaly_curve.md
and the plot to results/anomaly_curve.png after every scored checkpoint.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from lvm import commands, data as datasets
from lvm.config import DataConfig, InferenceConfig, LangevinConfig, ModelConfig, TrainConfig, save_config
from lvm.trainer import Correction, DivergedError, Trainer, seeded_rng

from ._common import write_json
from ._report import machine, script_command
from .anomaly_budget import LEBM, PAPER

ROOT = Path(__file__).resolve().parents[1]
METHODS = {  # name: (method, alpha, regression passes after each correction)
    "abp": ("abp", 0.0, 0),
    "ours-a0.1": ("ours", 0.1, 0),
    "ours-a0.5": ("ours", 0.5, 0),
    "ours-a0.3-r50": ("ours", 0.3, 50),
    "vae": ("vae", None, 0),
}
OT_EVERY, CKPT_EVERY, N_SELECT, TEST_STEPS, TEST_S = 300, 100, 2000, 100, 0.1
# the shared 150-CPU-second table on the first 6,000 normal images (results/anomaly_budget.md, 3 seeds, S0)
FIRST_6000 = {4: {"abp": 0.720, "ours-a0.1": 0.715, "ours-a0.5": 0.577, "vae": 0.792},
              9: {"abp": 0.393, "ours-a0.1": 0.387, "ours-a0.5": 0.343, "vae": 0.429}}
CHANCE_S0 = {1: 0.400, 4: 0.354, 5: 0.340, 7: 0.375, 9: 0.346}


class RegressingTrainer(Trainer):
    """A Trainer that, after each applied correction, takes `regress_steps` learning steps on random batches
    of the corrected population (the authors' regression passes); 0 is the plain Trainer."""

    regress_steps = 0

    def correct(self, progress=None, interrupt=None) -> Correction:
        c = super().correct(progress, interrupt)
        if self.regress_steps and not c.skipped:
            rng = seeded_rng(self.cfg.seed, 6, self.iteration)
            for _ in range(self.regress_steps):
                idx = torch.randint(len(self.data), (self.cfg.batch_size,), generator=rng)
                self.learn(self.data.x[idx].to(self.device), self.z[idx].to(self.device))
        return c

    def learn(self, x: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
        """L2 learning steps of the generator on the pairs (z, x) (Eq. 3-5)."""
        return self._learn(x, z)


def config(method: str, seed: int) -> TrainConfig:
    kind, alpha, _ = METHODS[method]
    return TrainConfig(method=kind, alpha=alpha, ot_every=OT_EVERY if kind == "ours" else 100, seed=seed,
                       epochs=10_000.0, checkpoint_every=0, q_fit_n=0, data=DataConfig("mnist", limit=0),
                       model=ModelConfig(latent_dim=16, arch="conv", width=32),
                       langevin=LangevinConfig(steps=5, step_size=0.1, sigma=0.3))


def trainer(method: str, seed: int, train_data, ckpt: Path | None = None) -> RegressingTrainer:
    tr = (RegressingTrainer.resume(ckpt, train_data) if ckpt is not None
          else RegressingTrainer(config(method, seed), train_data))
    tr.regress_steps = METHODS[method][2]
    return tr


def train_to(run: Path, method: str, digit: int, seed: int, budget: float, log) -> dict:
    """Train the run on to `budget` CPU seconds (resuming its checkpoint); its state is copied to ckpt-B.pt."""
    done = run / f"train-{budget:g}.json"
    if done.exists():
        return json.loads(done.read_text())
    ckpt, prog = run / "checkpoint.pt", run / "progress.json"
    if (run / "diverged.json").exists():
        return json.loads((run / "diverged.json").read_text())
    train_data, _ = datasets.meg_split(digit, DataConfig("mnist", limit=0))
    if ckpt.exists() and prog.exists():
        tr, p = trainer(method, seed, train_data, ckpt), json.loads(prog.read_text())
        cpu, wall, corrections = p["cpu_s"], p["wall_s"], p.get("corrections", 0)
        if p["iteration"] != tr.iteration:
            raise SystemExit(f"{run}: progress.json and checkpoint.pt disagree; delete the run and start again")
        log_path = run / "metrics.jsonl"  # a killed run logged iterations past its checkpoint: they are redone
        if log_path.exists():
            kept = [ln for ln in log_path.read_text().splitlines()
                    if ln.strip().endswith("}") and json.loads(ln)["iteration"] <= tr.iteration]
            log_path.write_text("".join(ln + "\n" for ln in kept))
    else:
        tr, cpu, wall, corrections = trainer(method, seed, train_data), 0.0, 0.0, 0

    def save() -> None:
        tr.save(ckpt)
        write_json(prog, {"iteration": tr.iteration, "cpu_s": cpu, "wall_s": wall, "corrections": corrections})

    with open(run / "metrics.jsonl", "a", buffering=1) as mlog:
        while cpu < budget:
            c0, w0 = time.process_time(), time.perf_counter()
            try:
                step = tr.step()
            except DivergedError as e:
                write_json(run / "diverged.json", {"diverged": str(e), "iteration": tr.iteration, "cpu_s": cpu})
                return json.loads((run / "diverged.json").read_text())
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            corrections += step.correction is not None and not step.correction.skipped
            mlog.write(json.dumps({**step.record(), "cpu_s": cpu}) + "\n")
            if tr.iteration % CKPT_EVERY == 0:
                save()
                log(f"{run.name}: iteration {tr.iteration}, {cpu:.0f} of {budget:g} CPU s")
    save()
    snap = run / f"ckpt-{budget:g}.pt"
    shutil.copy2(ckpt, snap)
    cfg = replace(tr.cfg, epochs=round(tr.iteration / tr.batches_per_epoch, 6), checkpoint_every=CKPT_EVERY)
    save_config(cfg, run / f"run-{budget:g}.json")
    rec = {"iteration": tr.iteration, "epochs": cfg.epochs, "cpu_s": cpu, "wall_s": wall, "budget_s": budget,
           "corrections": corrections, "regress_steps": tr.regress_steps, "checkpoint": snap.name}
    write_json(done, rec)
    return rec


def score(run: Path, digit: int, budget: float, log, n: int = N_SELECT) -> dict:
    """`lvm anomaly --checkpoint RUN/ckpt-B.pt` on S0 (K = 100, s 0.1, one chain, seed 0; n test images)."""
    path = run / f"score-{budget:g}.json"
    if path.exists():
        return json.loads(path.read_text())
    t0, c0 = time.perf_counter(), time.process_time()
    ckpt = run / f"ckpt-{budget:g}.pt"
    res = commands.anomaly(digit, InferenceConfig(steps=TEST_STEPS, step_size=TEST_S, restarts=1, n=n),
                           checkpoint_path=str(ckpt), seed=0, scores_out=str(run / f"test_scores-{budget:g}.npz"))
    rel = ckpt.relative_to(ROOT) if ckpt.is_relative_to(ROOT) else ckpt
    res.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
               command=f"python -m lvm anomaly --checkpoint {rel} --holdout {digit} --seed 0 --test-steps "
                       f"{TEST_STEPS} --test-step-size {TEST_S:g} --restarts 1 --n {n} --threads 1 --json")
    write_json(path, res)
    log(f"{run.name}: {budget:g} CPU s scored on {res['n_test']} images: AUPRC {res['auprc']:.3f}")
    return res


def collect(runs: Path) -> list[dict]:
    rows = []
    for spec_path in sorted(runs.glob("*/spec.json")):
        spec, d = json.loads(spec_path.read_text()), spec_path.parent
        for f in sorted(d.glob("score-*.json")):
            b = float(f.stem.split("-", 1)[1])
            t = json.loads((d / f"train-{b:g}.json").read_text())
            rows.append({**spec, "budget": b, "train": t, "score": json.loads(f.read_text()), "dir": d.name})
    return rows


def pm(xs: list[float]) -> str:
    if not xs:
        return ""
    if len(xs) == 1:
        return f"{xs[0]:.3f} (n=1)"
    return f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f} (n={len(xs)})"


def plan(digits, methods, budgets, seeds) -> list[tuple[float, int, int, str]]:
    """Breadth first: every (seed, digit, method) to the first budget, then to the next."""
    return [(b, s, d, m) for b in budgets for s in seeds for d in digits for m in methods]


def report(runs: Path, out: Path, todo: list[tuple], command: str) -> None:
    rows = collect(runs)
    left = [(b, s, d, m) for b, s, d, m in todo if not (runs / f"{m}-d{d}-s{s}" / f"score-{b:g}.json").exists()
            and not (runs / f"{m}-d{d}-s{s}" / "diverged.json").exists()]
    lines = [f"# AUPRC against training budget: ABP, ours and the VAE (issue 32){' (PARTIAL)' if left else ''}", "",
             f"`{command}`. {machine()}. One torch thread per process, at most two processes at a time under "
             "`nice -n 19`, the 2 cores shared with other engineers' jobs (hence wall s far above CPU s).", "",
             "Training: ALL the normal MEG training images of the digit, K = 5 Langevin steps per visit, d = 16 conv "
             "generator (width 32), batch 128, lr 0.001, sigma 0.3, s 0.1; ours corrects the whole population "
             f"every {OT_EVERY} iterations (warm-started); ours-a0.3-r50 adds 50 regression passes after each "
             "correction (within the budget). Budget = CPU seconds (process time) of training iterations; the "
             "150 and 600 points are checkpoints of the same runs. Scored by `lvm anomaly --checkpoint` (K = 100 "
             f"from the prior, one chain, seed 0, s 0.1) on S0, the seeded {N_SELECT:,} test images of "
             "`lvm anomaly --seed 0 --n 2000`.", ""]
    if left:
        lines += [f"**Partial: {len(left)} (budget, seed, digit, method) cells of this plan are not scored yet.** "
                  f"Resume with the same command (finished checkpoints are skipped, a killed run resumes from its "
                  "last checkpoint), e.g. one process per digit:", "",
                  "    nice -n 19 .venv/bin/python -m experiments.anomaly_curve --digits 4 > runs/curve-4.log 2>&1 &",
                  "    nice -n 19 .venv/bin/python -m experiments.anomaly_curve --digits 9 > runs/curve-9.log 2>&1 &",
                  "", "Not scored yet: " + ", ".join(f"{m} d{d} s{s} @ {b:g}" for b, s, d, m in left[:40])
                  + (" ..." if len(left) > 40 else ""), ""]
    digits = sorted({r["digit"] for r in rows})
    budgets = sorted({r["budget"] for r in rows})
    lines += ["AUPRC on S0, mean ± std over seeds (n runs per cell):", "",
              "| digit | budget CPU s | " + " | ".join(METHODS) + " | LEBM | paper (ours) | chance |",
              "|---|---|" + "---|" * (len(METHODS) + 3)]
    for d in digits:
        for b in budgets:
            cells = [pm([r["score"]["auprc"] for r in rows if (r["digit"], r["budget"], r["method"]) == (d, b, m)])
                     for m in METHODS]
            if any(cells):
                lines.append(f"| {d} | {b:g} | " + " | ".join(cells) + f" | {LEBM[d]:.3f} | {PAPER[d]:.3f} | "
                             f"{CHANCE_S0[d]:.3f} |")
    lines += ["", "Every scored checkpoint:", "",
              "| digit | method | seed | budget CPU s | wall s | iterations | epochs | corrections | scoring CPU s "
              "| AUPRC on S0 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["digit"], list(METHODS).index(r["method"]), r["seed"], r["budget"])):
        t, sc = r["train"], r["score"]
        lines.append(f"| {r['digit']} | {r['method']} | {r['seed']} | {r['budget']:g} | {t['wall_s']:.0f} | "
                     f"{t['iteration']} | {t['epochs']:.1f} | {t['corrections']} | {sc.get('cpu_seconds', 0):.0f} | "
                     f"{sc['auprc']:.3f} |")
    for dv in sorted(runs.glob("*/diverged.json")):
        lines.append(f"\n{dv.parent.name} diverged: {json.loads(dv.read_text())['diverged'][:200]}")
    lines += ["", "![AUPRC against budget](anomaly_curve.png)", ""]
    out.write_text("\n".join(lines) + "\n")
    if rows:
        plot(rows, out.with_suffix(".png"), sorted({d for _, _, d, _ in todo} | {r["digit"] for r in rows}))


def plot(rows: list[dict], path: Path, digits: list[int]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(digits), figsize=(5.2 * len(digits), 4.2), squeeze=False, layout="constrained")
    for ax, d in zip(axes[0], digits):
        for k, m in enumerate(METHODS):
            pts = {}
            for r in rows:
                if r["digit"] == d and r["method"] == m:
                    pts.setdefault(r["budget"], []).append(r["score"]["auprc"])
            if pts:
                bs = sorted(pts)
                ax.errorbar(bs, [np.mean(pts[b]) for b in bs], yerr=[np.std(pts[b]) for b in bs], marker="o",
                            capsize=3, color=f"C{k}", label=f"{m} (n={max(len(v) for v in pts.values())})")
            else:  # every method in the legend, so that the hollow markers' colours read
                ax.plot([], [], marker="o", color=f"C{k}", label=f"{m} (not scored yet)")
            if m in FIRST_6000.get(d, {}):  # the earlier 150-second table, on the first 6,000 images
                ax.plot([150 * 1.08], [FIRST_6000[d][m]], marker="o", mfc="none", color=f"C{k}", ls="")
        for level, name, style in ((PAPER[d], "paper (ours)", "--"), (LEBM[d], "LEBM", ":"),
                                   (CHANCE_S0[d], "chance", "-.")):
            ax.axhline(level, color="0.4", ls=style, lw=1, label=f"{name} {level:.3f}")
        ax.plot([], [], marker="o", mfc="none", color="0.3", ls="", label="150 s, first 6,000 images (3 seeds)")
        ax.set(xscale="log", xlabel="training budget, CPU seconds", ylabel="AUPRC on S0 (2,000 test images)",
               title=f"digit {d} held out", xlim=(110, 2100), xticks=[150, 600, 1500],
               xticklabels=["150", "600", "1,500"])
        ax.minorticks_off()
        ax.legend(fontsize=7)
    fig.suptitle("AUPRC against training budget, all normal images (error bars: std over seeds)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--digits", default="4,9")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--budgets", default="150,600,1500", help="CPU seconds; each is a checkpoint of the next")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--runs", default=str(ROOT / "runs" / "anomaly_curve"))
    p.add_argument("--out", default=str(ROOT / "results" / "anomaly_curve.md"))
    p.add_argument("--n", type=int, default=N_SELECT, help="test images scored (S0 is the default 2,000)")
    p.add_argument("--report-only", action="store_true", help="rewrite the tables and plot from the runs, train nothing")
    a = p.parse_args()
    torch.set_num_threads(1)
    runs, out = Path(a.runs), Path(a.out)
    digits = [int(d) for d in a.digits.split(",")]
    methods = [m for m in a.methods.split(",") if m]
    bad = sorted(set(methods) - set(METHODS))
    if bad:
        raise SystemExit(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    budgets = sorted(float(b) for b in a.budgets.split(","))
    seeds = [int(s) for s in a.seeds.split(",")]
    todo = plan(sorted({4, 9} | set(digits)), list(METHODS), budgets, sorted({0, 1} | set(seeds)))
    command = ("python -m experiments.anomaly_curve (one process per digit: --digits 4, --digits 9; "
               "defaults --methods " + ",".join(METHODS) + " --budgets 150,600,1500 --seeds 0,1)")

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    runs.mkdir(parents=True, exist_ok=True)
    if a.report_only:
        report(runs, out, todo, command)
        return
    for b, s, d, m in plan(digits, methods, budgets, seeds):
        run = runs / f"{m}-d{d}-s{s}"
        run.mkdir(parents=True, exist_ok=True)
        spec = {"digit": d, "method": m, "seed": s, "regress_steps": METHODS[m][2], "config": asdict(config(m, s))}
        old = run / "spec.json"
        if old.exists() and json.loads(old.read_text()) != json.loads(json.dumps(spec)):
            raise SystemExit(f"{run} was made with other settings; delete it or pass another --runs")
        write_json(old, spec)
        t = train_to(run, m, d, s, b, log)
        if "diverged" in t:
            log(f"{run.name}: diverged ({t['diverged'][:120]})")
            continue
        score(run, d, b, log, a.n)
        report(runs, out, todo, command)
    report(runs, out, todo, command)
    log(script_command() + ": done")


if __name__ == "__main__":
    main()
