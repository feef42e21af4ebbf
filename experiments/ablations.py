"""Paper Tables 4-6 and the numbers behind Fig. 5 on the CPU: one setting varied at a time around
a base (ours, alpha 0.5, s 0.1, K 20, L2 1) on MNIST, every run with the same epochs.

    python -m experiments.ablations                   # alpha, s, s0 (s at alpha 0), K, L2: 18 runs, ~1.3 h
    python -m experiments.ablations --factors alpha,s
    python -m experiments.ablations --quick --out /tmp/ab --runs /tmp/abruns   # smoke test, < 1 min

Each setting is `base_config` with its four values put in by `dataclasses.replace`. Runs of
the alphas in --fig5-alphas are trained in stages, each evaluated, so that
experiments/figures.py draws Fig. 5 from the same run directories. Writes results/ablations.md
after every finished run; stop it any time, the same command resumes.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from lvm.config import DataConfig, ModelConfig, TrainConfig

from . import _common as C
from . import _report as R

GRID = {"alpha": [0.0, 0.1, 0.5, 0.9, 1.0], "s": [3e-3, 1.5e-2, 3e-2, 6e-2], "K": [10, 30, 50], "L2": [1, 2, 3]}
BASE = {"alpha": 0.5, "s": 0.1, "K": 20, "L2": 1}
PAPER = {  # (MSE, FID) of the paper's MNIST ablations; Table 4 gives "before / after" the correction
    "s": {3e-3: ("0.007 / 0.018", "44.51 / 40.61"), 1.5e-2: ("0.008 / 0.013", "28.10 / 26.86"),
          3e-2: ("0.011 / 0.013", "22.70 / 21.89"), 6e-2: ("0.027 / 0.027", "109.97 / 87.77")},
    "K": {30: ("0.014", "22.32"), 50: ("0.011", "18.57")},        # and K = 100: 0.007, 15.43 (not run)
    "L2": {1: ("0.013", "21.89"), 2: ("0.010", "17.32"), 3: ("0.008", "14.28")},
}


def add_flags(p: argparse.ArgumentParser) -> None:
    """The settings both this script and figures.py (Fig. 5) build the runs from."""
    p.add_argument("--epochs", type=float, default=3.0, help="training epochs of every run")
    p.add_argument("--limit", type=int, default=10000, help="first N MNIST training images (0 = all)")
    p.add_argument("--ot-every", type=int, default=20, help="L")
    p.add_argument("--stages", type=int, default=4, help="evaluated stages of the Fig. 5 runs")
    p.add_argument("--fig5-alphas", default="0.1,0.5,0.9", help="alphas trained in stages for Fig. 5")
    p.add_argument("--eval-n", type=int, default=2000, help="test images for MSE (FID-C uses the CLI's 10,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-fid", action="store_true", help="skip FID-C (no classifier is trained)")
    p.add_argument("--classifier-epochs", type=int, default=3)


def apply_quick(a: argparse.Namespace) -> None:
    a.epochs, a.limit, a.stages, a.eval_n, a.no_fid, a.fig5_alphas = 1.0, 256, 2, 100, True, "0.5"
    a.test_steps = 20 if a.quick else C.TEST_STEPS


def base_config(a: argparse.Namespace) -> TrainConfig:
    """ours at BASE on MNIST; every setting of the tables is this with `configure`."""
    return configure(TrainConfig(method="ours", seed=a.seed, epochs=a.epochs, ot_every=a.ot_every,
                                 data=DataConfig("mnist", limit=a.limit), model=ModelConfig(C.LATENT_DIM)), BASE)


def configure(cfg: TrainConfig, setting: dict) -> TrainConfig:
    """`cfg` with a setting's alpha, s, K and L2."""
    return replace(cfg, alpha=setting["alpha"], learn_steps=setting["L2"],
                   langevin=replace(cfg.langevin, step_size=setting["s"], steps=setting["K"]))


def run_for(a: argparse.Namespace, setting: dict, clf) -> C.Run:
    """The run of one setting (dict of alpha, s, K, L2); the name says all four, so settings share runs."""
    name = f"alpha{setting['alpha']:g}-s{setting['s']:g}-K{setting['K']}-L2_{setting['L2']}"
    staged = setting["alpha"] in C.floats(a.fig5_alphas) and {k: v for k, v in setting.items() if k != "alpha"} == \
        {k: v for k, v in BASE.items() if k != "alpha"}
    n = a.stages if staged else 1
    return C.Run(a.runs / "ablations" / name, configure(base_config(a), setting),
                 C.shared_eval(a.eval_n, clf, getattr(a, "test_steps", C.TEST_STEPS)),
                 stages=[round(a.epochs * (i + 1) / n, 4) for i in range(n)])


def setting(factor: str, value: float) -> dict:
    """BASE with one factor set; "s0" is the s sweep without the correction (alpha 0), Table 4's "before"."""
    if factor == "s0":
        return {**BASE, "alpha": 0.0, "s": value}
    return {**BASE, factor: value}


def fid_classifier(a: argparse.Namespace, clock: C.Clock):
    if a.no_fid:
        return None, None
    return C.classifier(a.runs, "mnist", a.classifier_epochs, clock, a.threads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_flags(p, "ablations")
    add_flags(p)
    p.add_argument("--factors", default="alpha,s,s0,K,L2",
                   help="which ablations: alpha, s, s0 (s with alpha 0), K, L2")
    a = p.parse_args()
    a.test_steps = C.TEST_STEPS
    grid = dict(GRID)
    if a.quick:
        apply_quick(a)
        grid = {"alpha": [0.5], "s": [3e-2], "K": [10], "L2": [2]}
    clock = C.Clock()
    report = a.out / "ablations.md"
    clf, clf_info = fid_classifier(a, clock)
    factors = a.factors.split(",")
    rows = {f: [(v, run_for(a, setting(f, v), clf)) for v in grid[f.removesuffix("0")]] for f in factors}
    unique = list({r.directory: r for f in factors for _, r in rows[f]}.values())

    def write(complete: bool) -> None:
        body = ""
        for f in factors:
            out = []
            for v, run in rows[f]:
                r, t = run.result(), C.read_json(run.directory / f"train-{len(run.stages) - 1}.json")
                pm, pf = PAPER.get(f.removesuffix("0"), {}).get(v, ("–", "–"))
                if run.diverged():
                    out.append([f"{v:g}", "diverged: " + run.diverged()["message"][:80]] + ["–"] * 5 + [pm, pf])
                elif r is None or t is None:
                    out.append([f"{v:g}", "not run yet"] + ["–"] * 5 + [pm, pf])
                else:
                    recs = C.metrics(run.directory)
                    out.append([f"{v:g}", R.fmt(r["mse"]), R.fmt(r.get("fid_c"), 2),
                                f"{r['latent_ot_cost']:.3f} ({r['prior_ot_cost']:.3f})", R.fmt(r["latent_mmd"]),
                                recs[-1]["iteration"], f"{t['train_seconds']:.0f}", pm, pf])
            what = {"alpha": "alpha (Eq. 10; paper Fig. 5, no numbers)", "s": "Langevin step size s (paper Table 4)",
                    "s0": "Langevin step size s without the correction, alpha 0 (our reading of Table 4's 'before')",
                    "K": "Langevin steps K (paper Table 5; it also has K = 100: 0.007, 15.43)",
                    "L2": "learning steps L2 (paper Table 6)"}[f]
            body += f"## {what}\n\n" + R.table(
                [f.removesuffix("0"), "test MSE", "FID-C", "latent OT cost (prior vs prior)", "latent MMD", "iterations", "train s",
                 "paper MSE" + (" (before / after)" if f in ("s", "s0") else ""),
                 "paper FID (Inception; not comparable)" + (" (before / after)" if f in ("s", "s0") else "")], out) + "\n\n"
        fid = (f"FID-C: `{clf_info['command']}` (test accuracy {clf_info['test_accuracy']:.4f}); 10,000 prior "
               "samples against the first 10,000 test images (eval's --fid-n default; PROTOCOL sec. 2)"
               if clf_info else "FID-C: skipped (--no-fid or --quick)")
        setup = [
            f"data: MNIST, first {a.limit:,} training images" if a.limit else "data: MNIST, all training images",
            f"seed: {a.seed} (one run per setting)",
            f"budget: {a.epochs:g} epochs for every run (the same iterations; train seconds listed per run)",
            f"base: ours, alpha {BASE['alpha']}, s {BASE['s']}, K {BASE['K']}, L2 {BASE['L2']}, L = {a.ot_every}, "
            f"conv decoder, d = {C.LATENT_DIM}, sigma 0.3, batch 128, Adam lr 1e-3, fast OT solver; each table varies "
            "one setting. The paper's s values are on its own scale: its public code divides the energy by the batch "
            "size (PROTOCOL sec. 3), this code does not, so the same s moves the chains further here",
            f"test-time inference (every run): K = {a.test_steps} Langevin steps from the prior, s = "
            f"{C.TEST_STEP_SIZE}, {C.RESTARTS} restart; MSE per pixel in [0, 1] over the first {a.eval_n:,} test images",
            "latent fit: exact OT cost between 2,000 training latents and 2,000 prior draws (the same statistic "
            "between two prior samples in brackets); RBF MMD^2",
            fid,
            "paper: " + C.PAPER_URL + "; Table 4's 'before / after' is the model before / after the OT correction; "
            "we read 'before' as the same training without the correction (alpha 0, the s0 table) and 'after' as "
            f"with it (alpha {BASE['alpha']}, the s table)",
        ]
        R.write_report(report, "Ablations on MNIST: alpha, s, K, L2", clock, setup, body,
                       [r.directory for r in unique], complete)

    C.execute_all(unique, write, clock, a.threads, a.checkpoint_every)
    clock.log(f"wrote {report}")


if __name__ == "__main__":
    main()
