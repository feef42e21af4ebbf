"""Paper Table 1 on the CPU: ours vs ABP (alpha = 0) vs a VAE with the same decoder, on MNIST and
Fashion-MNIST, each method given the same wall-clock budget of training iterations.

    python -m experiments.table1                       # both data sets, 600 s per method, ~1.2 h
    python -m experiments.table1 --data mnist --budget-seconds 1800
    python -m experiments.table1 --quick --out /tmp/t1 --runs /tmp/t1runs   # smoke test, < 1 min

Writes results/table1.md after every finished run. Stop it any time; the same command resumes.
Per-pixel MSE in [0, 1] with z from the shared test-time Langevin protocol, FID-C (its own
column: not comparable with the paper's Inception FID), latent fit of the training latents
(exact OT cost and RBF MMD to a prior sample). Fashion-MNIST is skipped, with the reason in the
table, when `python -m lvm fetch fashion` cannot find it.
"""
from __future__ import annotations

import argparse

from lvm.config import DataConfig, ModelConfig, TrainConfig

from . import _common as C
from . import _report as R

PAPER_MSE = {("mnist", "ours"): 0.0008, ("mnist", "vae"): 0.023}   # Table 1; ABP has "-" on MNIST
PAPER_FID = {("mnist", "ours"): 14.28, ("mnist", "vae"): 19.21}    # Inception FID: never beside FID-C
NAMES = {"ours": "ours (alpha {alpha})", "abp": "ABP (alpha = 0)", "vae": "VAE (same decoder)"}
FIRST_EPOCHS = 0.5  # every budgeted run's first chunk, which measures its speed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_flags(p, "table1")
    p.add_argument("--data", default="mnist,fashion", help="comma-separated: mnist, fashion")
    p.add_argument("--methods", default="ours,abp,vae")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--budget-seconds", type=float, default=600.0,
                   help="training-iteration seconds per run, the same for every method")
    p.add_argument("--limit", type=int, default=10000, help="first N training images (0 = all)")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--ot-every", type=int, default=20, help="L")
    p.add_argument("--eval-n", type=int, default=2000, help="test images for MSE (FID-C uses the CLI's 10,000)")
    p.add_argument("--no-fid", action="store_true", help="skip FID-C (no classifier is trained)")
    p.add_argument("--classifier-epochs", type=int, default=3)
    a = p.parse_args()
    if a.quick:
        a.data, a.budget_seconds, a.limit, a.eval_n, a.no_fid = "mnist", 2.0, 512, 100, True
    test_steps = 20 if a.quick else C.TEST_STEPS
    clock = C.Clock()
    root = a.runs / "table1"
    report = a.out / "table1.md"
    datasets, methods = a.data.split(","), a.methods.split(",")
    runs: dict[tuple, C.Run] = {}
    skipped: dict[str, str] = {}
    clfs: dict[str, dict] = {}

    def write(complete: bool) -> None:
        rows = []
        for data in datasets:
            if data in skipped:
                rows.append([data, "all", "–", "–", "–", "–", f"skipped: {skipped[data]}"] + ["–"] * 7)
                continue
            for s in C.seeds(a.seeds):
                for m in methods:
                    run = runs.get((data, m, s))
                    r = run.result() if run else None
                    t = C.read_json(run.directory / "train-0.json") if run else None
                    name = NAMES[m].format(alpha=a.alpha)
                    pm, pf = R.fmt(PAPER_MSE.get((data, m))), R.fmt(PAPER_FID.get((data, m)), 2)
                    if run and run.diverged():
                        rows.append([data, name, s, "–", "–", "–", "diverged", pm, "–", "–", pf, "–", "–"])
                    elif r is None or t is None:
                        rows.append([data, name, s, "–", "–", "–", "not run yet", pm, "–", "–", pf, "–", "–"])
                    else:
                        rows.append([data, name, s, f"{t['epochs']:.2f}", t["iterations"] if "iterations" in t
                                     else "–", f"{t['train_seconds']:.0f}", R.fmt(r["mse"]), pm,
                                     R.fmt(r.get("encoder_mse")), R.fmt(r.get("fid_c"), 2), pf,
                                     f"{r['latent_ot_cost']:.3f} ({r['prior_ot_cost']:.3f})",
                                     R.fmt(r["latent_mmd"])])
        header = ["data", "method", "seed", "epochs", "iterations", "train s", "test MSE", "paper MSE",
                  "VAE encoder MSE", "FID-C", "paper FID (Inception; not comparable)",
                  "latent OT cost (prior vs prior)", "latent MMD"]
        used = "; ".join(f"{k}: `{v['command']}`, test accuracy {v['test_accuracy']:.4f}" for k, v in clfs.items())
        fid = (f"FID-C: Fréchet distance on the penultimate features of the CLI's small classifier ({used}), "
               f"10,000 prior samples against the first 10,000 test images (eval's --fid-n default; PROTOCOL sec. 2)"
               if clfs else "FID-C: skipped (--no-fid or --quick)")
        setup = [
            f"data: {', '.join(datasets)}; first {a.limit:,} training images" if a.limit else "data: all training images",
            f"seeds: {a.seeds}",
            f"budget: {a.budget_seconds:g} s of training iterations per run, the same for every method (sum of the "
            "per-iteration seconds in metrics.jsonl; process start, data loading, checkpoints and evaluation are "
            "not counted); each run is resumed with a larger --epochs until the budget is used",
            f"shared model and training: conv decoder, d = {C.LATENT_DIM}, sigma 0.3, batch 128, Adam lr 1e-3, "
            f"K = 20 and s = 0.1 during training (TrainConfig defaults); ours: alpha {a.alpha}, L = {a.ot_every}, fast OT solver",
            f"test-time inference (all methods, VAE included): K = {test_steps} Langevin steps from the prior, "
            f"s = {C.TEST_STEP_SIZE}, {C.RESTARTS} restart; MSE per pixel in [0, 1] over the first {a.eval_n:,} "
            "test images; the VAE's own encoder MSE in its own column",
            "latent fit: exact OT cost (mean squared distance) between 2,000 training latents and 2,000 prior "
            "draws, with the same statistic between two prior samples in brackets; RBF MMD^2 (unbiased)",
            fid,
            f"paper: {C.PAPER_URL}, Table 1 (MNIST only; no Fashion-MNIST, no ABP row on MNIST)",
        ]
        body = R.table(header, rows)
        if skipped:
            body += "\n\n" + "\n".join(f"- {d} skipped: {msg}" for d, msg in skipped.items())
        R.write_report(report, "Table 1: reconstruction, generation and latent fit", clock, setup, body,
                       [r.directory for r in runs.values()], complete)

    for data in datasets:
        why = C.data_available(data, clock)
        if why:
            skipped[data] = why
            clock.log(f"{data}: not available on this machine, skipped: {why}")
            continue
        clf = None
        if not a.no_fid:
            clf, clfs[data] = C.classifier(a.runs, data, a.classifier_epochs, clock, a.threads)
        for s in C.seeds(a.seeds):
            for m in methods:
                cfg = TrainConfig(method=m, alpha=a.alpha if m == "ours" else None, seed=s, ot_every=a.ot_every,
                                  epochs=FIRST_EPOCHS, data=DataConfig(data, limit=a.limit),
                                  model=ModelConfig(C.LATENT_DIM))
                runs[(data, m, s)] = C.Run(root / f"{data}-{m}-s{s}", cfg, C.shared_eval(a.eval_n, clf, test_steps),
                                           budget_s=a.budget_seconds)
    C.execute_all(runs.values(), write, clock, a.threads, a.checkpoint_every)
    clock.log(f"wrote {report}")


if __name__ == "__main__":
    main()
