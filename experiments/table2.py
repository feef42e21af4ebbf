"""Paper Table 2 on the CPU: MNIST anomaly AUPRC per held-out digit (MEG split), ours vs ABP vs a
VAE with the same decoder, the same training budget and the same test-time inference for all.

    python -m experiments.table2                    # digits 1,4,5,7,9 x 3 seeds x 3 methods, ~2.5 h
    python -m experiments.table2 --digits 4 --seeds 0,1,2,3,4
    python -m experiments.table2 --quick --out /tmp/t2 --runs /tmp/t2runs   # smoke test, < 1 min

Each run is a TrainConfig, written to its run.json, and one `python -m lvm anomaly --config
run.json` (train on the first --limit normal images of the MEG training split, then score a
seeded random subset of --test-n images of its test split; the subset keeps the anomaly share).
spec.json holds the holdout digit, asdict of the config and of the test-time InferenceConfig.
Writes results/table2.md after every finished run; stop it any time, the same command resumes
(a killed run continues from its last checkpoint).
"""
from __future__ import annotations

import argparse
from dataclasses import asdict

from lvm.config import DataConfig, LangevinConfig, ModelConfig, TrainConfig

from . import _common as C
from . import _report as R

DIGITS = (1, 4, 5, 7, 9)
PAPER = {  # Table 2 of the paper (VAE, LEBM and ABP taken there from LEBM [31]); mean ± std
    "ours": ("0.353 ± 0.021", "0.770 ± 0.024", "0.726 ± 0.030", "0.550 ± 0.013", "0.555 ± 0.023"),
    "abp": ("0.095 ± 0.028", "0.138 ± 0.037", "0.147 ± 0.026", "0.138 ± 0.021", "0.102 ± 0.033"),
    "vae": ("0.063", "0.337", "0.325", "0.148", "0.104"),
    "lebm": ("0.336 ± 0.008", "0.630 ± 0.017", "0.619 ± 0.013", "0.463 ± 0.009", "0.413 ± 0.010"),
}
NAMES = {"ours": "ours", "abp": "ABP", "vae": "VAE"}


def paper(method: str, digit: int) -> str:
    return PAPER[method][DIGITS.index(digit)] if digit in DIGITS else "–"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_flags(p, "table2")
    p.add_argument("--digits", default="1,4,5,7,9", help="held-out digits")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (training and test subset)")
    p.add_argument("--methods", default="ours,abp,vae")
    p.add_argument("--limit", type=int, default=6000, help="first N images of the MEG training split (0 = all)")
    p.add_argument("--epochs", type=float, default=4.0, help="training epochs, the same for every method")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--ot-every", type=int, default=20, help="L")
    p.add_argument("--steps", type=int, default=20, help="K, Langevin steps per visit during training")
    p.add_argument("--test-n", type=int, default=2000, help="test images scored per run (0 = the whole split)")
    p.add_argument("--tag", default="", help="a variant's name: runs go to RUNS/table2-TAG/, the table to table2-TAG.md")
    a = p.parse_args()
    test_steps = C.TEST_STEPS
    if a.quick:
        a.digits, a.seeds, a.limit, a.epochs, a.test_n, test_steps = "1", "0", 256, 1.0, 200, 20
    clock = C.Clock()
    name = f"table2-{a.tag}" if a.tag else "table2"
    root, report = a.runs / name, a.out / f"{name}.md"
    digits, seeds, methods = C.seeds(a.digits), C.seeds(a.seeds), a.methods.split(",")
    inference = C.protocol(a.test_n, test_steps)
    grid = [(d, m, s) for d in digits for s in seeds for m in methods]
    dirs = {(d, m, s): root / f"{m}-d{d}-s{s}" for d, m, s in grid}

    def config(m: str, s: int) -> TrainConfig:
        """The run of one method and seed; the holdout digit is the anomaly command's, not the config's."""
        return TrainConfig(method=m, alpha=a.alpha if m == "ours" else None, seed=s, epochs=a.epochs,
                           ot_every=a.ot_every, data=DataConfig("mnist", limit=a.limit),
                           model=ModelConfig(C.LATENT_DIM), langevin=LangevinConfig(steps=a.steps))

    def write(complete: bool) -> None:
        res = {k: C.read_json(v / "anomaly.json") for k, v in dirs.items()}
        rows, detail = [], []
        for d in digits:
            share = [r["anomaly_share"] for (dd, _, _), r in res.items() if dd == d and r]
            row = [d, f"{sum(share) / len(share):.3f}" if share else "–"]
            for m in methods:
                row += [R.mean_std([r["auprc"] for (dd, mm, _), r in res.items() if dd == d and mm == m and r]),
                        paper(m, d)]
            rows.append(row + [paper("lebm", d)])
        for (d, m, s), path in dirs.items():
            r, div = res[(d, m, s)], C.read_json(path / "diverged.json")
            recs = C.metrics(path)
            state = f"{r['auprc']:.3f}" if r else ("diverged" if div else "not run yet")
            detail.append([d, NAMES[m], s, state, f"{r['anomaly_share']:.3f}" if r else "–",
                           recs[-1]["iteration"] if recs else "–", f"{C.train_seconds(path):.0f}" if recs else "–"])
        header = ["held-out digit", "chance (anomaly share)"]
        for m in methods:
            header += [f"{NAMES[m]} AUPRC", f"paper {NAMES[m]}"]
        body = (R.table(header + ["paper LEBM"], rows) + "\n\n## Every run\n\n"
                + R.table(["digit", "method", "seed", "AUPRC", "anomaly share", "iterations", "train s"], detail))
        setup = [
            f"data: MNIST, MEG split (PROTOCOL sec. 2): all 70,000 images pooled, normal = the other digits shuffled "
            f"with RandomState(42), first 80 % train; training on the first {a.limit:,} of those "
            f"({'all' if not a.limit else 'a subset'}); test: a RandomState(seed) subset of {a.test_n or 'all'} "
            "images of the remaining 20 % normal + every image of the held-out digit",
            f"seeds: {a.seeds} (training seed and test subset); mean ± sample std over seeds, never a best run",
            f"budget: {a.epochs:g} epochs for every method (the same iterations; their train seconds differ and "
            "are listed per run)",
            f"model and training: conv decoder, d = {C.LATENT_DIM}, sigma 0.3, batch 128, Adam lr 1e-3, K = {a.steps} "
            f"and s = 0.1 during training, persistent chains; ours: alpha {a.alpha}, L = {a.ot_every}, fast OT solver",
            f"test-time inference (every method, the VAE included): K = {test_steps} Langevin steps from the prior, "
            f"s = {C.TEST_STEP_SIZE}, {C.RESTARTS} restart; score -log p(x, z) = ||x - g(z)||^2 / (2 sigma^2) + "
            "||z||^2 / 2; AUPRC = sklearn auc(recall, precision), anomalies positive",
            f"paper: {C.PAPER_URL}, Table 2 (10 runs per digit there; its VAE, ABP and LEBM rows come from LEBM)",
        ]
        R.write_report(report, "Table 2: anomaly detection AUPRC on MNIST (MEG split)", clock, setup, body,
                       list(dirs.values()), complete)

    write(False)
    for i, (d, m, s) in enumerate(grid):
        path = dirs[(d, m, s)]
        label = f"{name}/{path.name} ({i + 1}/{len(grid)})"
        if (path / "anomaly.json").exists() or (path / "diverged.json").exists():
            clock.log(f"{label}: done earlier, skipped")
            continue
        cfg = config(m, s)
        run_json = C.check_spec(path, {"holdout": d, "train": asdict(cfg), "inference": asdict(inference)})
        clock.log(f"{label}: training {a.epochs:g} epochs and scoring {a.test_n or 'all'} test images")
        r = C.call(path, ["anomaly", "--holdout", str(d), "--config", str(run_json), *C.inference_args(inference),
                          "--out", str(path), "--json", "--threads", str(a.threads),
                          "--checkpoint-every", str(a.checkpoint_every)])
        if r is None:
            clock.log(f"{label}: diverged")
        else:
            C.write_json(path / "anomaly.json", r)
            clock.log(f"{label}: AUPRC {r['auprc']:.3f} (chance {r['anomaly_share']:.3f})")
        write(False)
    write(True)
    clock.log(f"wrote {report}")


if __name__ == "__main__":
    main()
