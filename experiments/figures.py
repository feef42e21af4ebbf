"""Paper Fig. 2, 3 and 5 on the CPU, as PNGs plus the numbers behind them (results/figures.md).

    python -m experiments.figures                   # all three, ~30 min (Fig. 5 reuses ablations.py's runs)
    python -m experiments.figures --only fig2,fig3  # MNIST 0/1 with d = 2 only, a few minutes
    python -m experiments.figures --quick --out /tmp/fig --runs /tmp/figruns   # smoke test

Fig. 2: q(z^K), the model's own inference (K training-time Langevin steps from fresh noise on the training
images), of ours on MNIST digits 0 and 1 with d = 2 after each training stage, beside a prior sample, with the
debiased W2^2 to the prior (lvm.distance) under each panel. Fig. 3: the latents of the VAE (encoder means), ABP
and ours at the end of training, side by side. Fig. 5: latent fit (OT cost of q(z^K) to the
prior), test MSE and FID-C over corrections for three alphas, from the staged runs of
experiments/ablations.py (trained here when missing, into the same run directories); the fit
is the `chain_fit` of their metrics.jsonl.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from lvm import checkpoint
from lvm.config import DataConfig, ModelConfig, TrainConfig
from lvm.data import load
from lvm.distance import prior_band, prior_w2sq, w2
from lvm.metrics import latent_ot_cost, prior_baseline_ot_cost, q_latents

from . import _common as C
from . import _plot
from . import _report as R
from . import ablations


def latents(path) -> tuple[np.ndarray, int]:
    """(training latents (n, d), iteration) of a checkpoint file."""
    state = checkpoint.load(path)
    return state["latents"].numpy(), int(state["iteration"])


def fig23(a: argparse.Namespace, clock: C.Clock) -> tuple[str, list]:
    root = a.runs / "figures"
    base = TrainConfig(seed=a.seed, ot_every=a.ot_every01, epochs=a.epochs01,
                       data=DataConfig("mnist", (0, 1), limit=a.limit01), model=ModelConfig(2))
    stages = [round(a.epochs01 * (i + 1) / a.stages01, 4) for i in range(a.stages01)]
    ev = C.shared_eval(a.eval_n, None, a.test_steps)
    runs = {"ours": C.Run(root / "mnist01-ours", replace(base, method="ours", alpha=a.alpha), ev, stages),
            "abp": C.Run(root / "mnist01-abp", replace(base, method="abp", alpha=None), ev, stages),
            "vae": C.Run(root / "mnist01-vae", replace(base, method="vae", alpha=None), ev, stages[-1:])}
    for run in runs.values():
        C.execute(run, clock, a.threads, a.checkpoint_every)
    train = load(DataConfig("mnist", (0, 1), limit=a.limit01), "train")
    labels = train.y.numpy()
    prior = np.random.RandomState(0).standard_normal((len(labels), 2))
    n_fit = min(1000, len(labels))
    level = prior_baseline_ot_cost(n_fit, 2)
    sub = np.random.RandomState(0).permutation(len(labels))[:n_fit]  # the images whose q(z^K) is drawn
    band = prior_band(n_fit, 2)
    rows, panels = [], []
    for k in range(len(stages)):
        for m in ("ours", "abp"):
            z, it = latents(runs[m].directory / f"stage-{k}.pt")
            cfg, gen, _ = checkpoint.load_model(runs[m].directory / f"stage-{k}.pt")
            q = q_latents(gen, train.x[torch.from_numpy(sub)], cfg.langevin, seed=0).detach().numpy()
            qd, cd = prior_w2sq(q, seed=0), prior_w2sq(z[sub], seed=0)
            rows.append([m, k + 1, it, it // a.ot_every01 if m == "ours" else 0, f"{qd:.3f}", f"{cd:.3f}",
                         f"{latent_ot_cost(z, n_fit):.3f}"])
            if m == "ours":
                panels.append((f"{it // a.ot_every01} corrections\nW2² {qd:.3f} (W2 {w2(qd):.2f})", q, labels[sub]))
    panels.append((f"prior N(0, I)\nW2² {prior_w2sq(prior[sub], seed=1):.3f}", prior[sub], None))
    f2 = _plot.scatter_panels(panels, a.out / "fig2.png", "Fig. 2: ours' own q(z^K) over corrections, MNIST 0/1, "
                              f"d = 2 (alpha {a.alpha}, L = {a.ot_every01})", ["digit 0", "digit 1"])
    p3 = []
    for m, title in (("vae", "VAE (encoder means)"), ("abp", "ABP"), ("ours", f"ours (alpha {a.alpha})")):
        z, it = latents(runs[m].directory / f"stage-{len(runs[m].stages) - 1}.pt")
        r = runs[m].result()
        p3.append((f"{title}: OT {latent_ot_cost(z, n_fit):.2f}, MSE {r['mse']:.3f}", z, labels))
    p3.append((f"prior N(0, I): OT {level:.2f}", prior, None))
    f3 = _plot.scatter_panels(p3, a.out / "fig3.png", "Fig. 3: latents of VAE, ABP and ours, MNIST 0/1, d = 2, "
                              f"{a.epochs01:g} epochs each", ["digit 0", "digit 1"])
    md = (f"## Fig. 2 and 3: MNIST 0/1, d = 2\n\n![Fig. 2]({f2.name})\n\n![Fig. 3]({f3.name})\n\n"
          f"First {a.limit01:,} training images of digits 0 and 1; MLP decoder (the CLI's default for d = 2); "
          f"{a.epochs01:g} epochs in {a.stages01} stages; L = {a.ot_every01}. Fig. 2 draws q(z^K), K = "
          f"{runs['ours'].train.langevin.steps} Langevin steps from fresh noise (seed 0) on {n_fit:,} training images "
          f"with each stage's generator. W2² = the debiased squared Wasserstein-2 distance to the prior "
          f"(lvm.distance, seed 0; squared latent units; two prior samples of {n_fit:,} read {band.mean:+.3f} ± "
          f"{band.sd:.3f}, so under {band.upper:.3f} counts as on the prior). The old raw OT cost of the chains "
          f"(between two prior samples: {level:.3f}) is kept in the last column. Fig. 3 draws the training "
          "latents (persistent chains, encoder means for the VAE).\n\n"
          + R.table(["method", "stage", "iteration", "corrections", "q(z^K) W2²", "chains W2²",
                     "chains raw OT cost"], rows) + "\n\n")
    return md, [r.directory for r in runs.values()]


def fig5(a: argparse.Namespace, clock: C.Clock) -> tuple[str, list]:
    clf, _ = ablations.fid_classifier(a, clock)
    alphas = C.floats(a.fig5_alphas)
    runs = {al: ablations.run_for(a, {**ablations.BASE, "alpha": al}, clf) for al in alphas}
    for run in runs.values():
        C.execute(run, clock, a.threads, a.checkpoint_every)
    fit, mse, fid, rows = [], [], [], []
    for al, run in runs.items():
        recs = [r for r in C.metrics(run.directory) if "chain_fit" in r]
        fit.append((f"alpha {al:g}", [r["iteration"] / a.ot_every for r in recs], [r["chain_fit"] for r in recs]))
        st = run.stage_results()
        xs = [t["iterations"] / a.ot_every for t, _ in st]
        mse.append((f"alpha {al:g}", xs, [e["mse"] for _, e in st]))
        fid.append((f"alpha {al:g}", xs, [e.get("fid_c", float("nan")) for _, e in st]))
        rows += [[f"{al:g}", k + 1, t["iterations"], t["iterations"] // a.ot_every, R.fmt(e["mse"]),
                  R.fmt(e.get("fid_c"), 2), f"{e['latent_ot_cost']:.3f}"] for k, (t, e) in enumerate(st)]
    png = _plot.line_panels([("latent fit: OT cost of q(z^K) to the prior", "corrections", fit),
                             ("test MSE", "corrections", mse), ("FID-C", "corrections", fid)],
                            a.out / "fig5.png", f"Fig. 5: alpha over corrections (MNIST, d = {C.LATENT_DIM}, "
                            f"L = {a.ot_every})")
    md = (f"## Fig. 5: alpha over corrections (MNIST)\n\n![Fig. 5]({png.name})\n\nThe runs of "
          "experiments/ablations.py (same directories, base settings there). Left: exact OT cost between 500 "
          "latents of q(z^K), before the correction, and 500 prior draws, logged at every L-th iteration "
          "(for alpha = 0 there is no correction, only the measurement). Middle and right: the staged evaluations.\n\n"
          + R.table(["alpha", "stage", "iterations", "corrections", "test MSE", "FID-C", "latent OT cost (2,000)"],
                    rows) + "\n\n")
    return md, [r.directory for r in runs.values()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_flags(p, "figures")
    ablations.add_flags(p)
    p.add_argument("--only", default="fig2,fig3,fig5", help="fig2,fig3 (one set of runs) and/or fig5")
    p.add_argument("--alpha", type=float, default=0.5, help="Fig. 2/3: ours' alpha")
    p.add_argument("--limit01", type=int, default=3000, help="Fig. 2/3: first N images of digits 0 and 1")
    p.add_argument("--epochs01", type=float, default=10.0, help="Fig. 2/3: training epochs")
    p.add_argument("--stages01", type=int, default=5, help="Fig. 2: panels (training stages)")
    p.add_argument("--ot-every01", type=int, default=4, help="Fig. 2/3: L")
    a = p.parse_args()
    a.test_steps = C.TEST_STEPS
    if a.quick:
        ablations.apply_quick(a)
        a.limit01, a.epochs01, a.stages01 = 256, 2.0, 2
    clock = C.Clock()
    only = a.only.split(",")
    body, dirs = "", []
    if "fig2" in only or "fig3" in only:
        md, d = fig23(a, clock)
        body, dirs = body + md, dirs + d
    if "fig5" in only:
        md, d = fig5(a, clock)
        body, dirs = body + md, dirs + d
    setup = [f"test-time inference for the MSE: K = {a.test_steps}, s = {C.TEST_STEP_SIZE}, {C.RESTARTS} restart, "
             f"first {a.eval_n:,} test images", f"seed: {a.seed}", f"paper: {C.PAPER_URL}, Fig. 2, 3, 5"]
    report = a.out / "figures.md"
    R.write_report(report, "Fig. 2, 3 and 5", clock, setup, body, dirs, True)
    clock.log(f"wrote {report}")


if __name__ == "__main__":
    main()
