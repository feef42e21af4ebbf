"""Issue 12, steps 1c-2: the full-data recipe for the anomaly detectors, ABP against ours, digit 4 first.

    python -m experiments.anomaly_recipe [--digits 4,1,5,7,9] [--variants abp:3,ours-a0.1:3] [--limit 0]

Each variant METHOD:EPOCHS trains on the first --limit normal training images of the MEG split
(PROTOCOL sec. 2; 0 = all ~50,500) for EPOCHS epochs with K = 5 Langevin steps per visit (the budget
search's finding: more, shorter visits), d = 16, the conv generator, seed 0; ours uses alpha 0.1
with a warm-started correction every 100 iterations on all the data, every 20 on a 6,000 subset. The score is the same for both: K = 100, s = 0.1 from the prior on the same
seeded 2,000 test images. Runs go to runs/anomaly_recipe/NAME (`lvm anomaly` resumes a killed one),
their CLI output to NAME/result.json, their progress to NAME/log.txt; results/anomaly_recipe.md is
rewritten after every run.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ._report import machine, script_command

ROOT = Path(__file__).resolve().parents[1]
LEBM = {1: 0.336, 4: 0.630, 5: 0.619, 7: 0.463, 9: 0.413}
PAPER = {1: 0.353, 4: 0.770, 5: 0.726, 7: 0.550, 9: 0.555}
SHIPPED_BEFORE = {1: 0.254, 4: 0.500, 5: 0.555, 7: 0.471, 9: 0.377}  # pretrained/anomaly-D before this recipe
METHODS = {"abp": ["--method", "abp"], "ours-a0.1": ["--method", "ours", "--alpha", "0.1", "--ot-every", "100"]}
COMMON = ["--latent-dim", "16", "--arch", "conv", "--langevin-steps", "5", "--seed", "0", "--test-steps", "100",
          "--test-step-size", "0.1", "--n", "2000", "--checkpoint-every", "100", "--threads", "1", "--json"]


def run(digit: int, method: str, epochs: float, limit: int, runs: Path) -> dict:
    name = f"{method}-d{digit}" + (f"-n{limit}" if limit else "") + f"-e{epochs:g}"
    out = runs / name
    done = out / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    every = ["--ot-every", "20"] if limit and method != "abp" else []  # later flags win
    args = ["anomaly", "--holdout", str(digit), *METHODS[method], *every, "--epochs", f"{epochs:g}",
            "--limit", str(limit), *COMMON,
            "--out", str(out), "--scores-out", str(out / "test_scores.npz")]
    (out / "command.txt").write_text("python -m lvm " + " ".join(args) + "\n")
    t0 = time.time()
    with open(out / "log.txt", "ab") as log:
        proc = subprocess.run([sys.executable, "-m", "lvm", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        return {"digit": digit, "method": method, "error": f"exit {proc.returncode}, see {out / 'log.txt'}"}
    res = json.loads([ln for ln in proc.stdout.decode().splitlines() if ln.startswith("{")][-1])
    res.update(digit=digit, method_name=method, epochs=epochs, limit=limit, name=name, wall_s=time.time() - t0,
               out=str(out))
    done.write_text(json.dumps(res, indent=1))
    print(f"  digit {digit} {method:10s} AUPRC {res['auprc']:.3f} ({res['wall_s']:.0f} s)", flush=True)
    return res


def report(results: list[dict], path: Path, t0: float) -> None:
    rows = [r for r in results if "auprc" in r]
    digits = [d for d in (4, 1, 5, 7, 9) if any(r["digit"] == d for r in rows)]
    lines = ["# The anomaly recipe: ABP and ours, K = 5 per visit (issue 12)", "",
             f"`{script_command()}` (and earlier invocations, whose runs are read). {machine()}. One torch thread "
             f"per run, up to two runs at a time. Started {time.strftime('%Y-%m-%d %H:%M', time.gmtime(t0))} UTC.", "",
             "Normal MEG training images (all ~50,500, or the first 6,000), K = 5 Langevin steps per visit (s = 0.1, "
             "sigma 0.3), d = 16 conv generator (width 32), batch 128, lr 0.001, seed 0; ours: alpha 0.1, a "
             "warm-started correction every 100 iterations (all images) or 20 (6,000). Scored alike: K = 100, "
             "s = 0.1 from the prior, one chain, the same seeded 2,000 test images. One seed each: the seed "
             "spread of this recipe on digit 4 is in results/table2-k5-e12*.md (ABP 0.642 ± 0.036, ours alpha "
             "0.1 0.631 ± 0.038 over 3 seeds).", "",
             "| digit | run | method | training images | epochs | AUPRC | chance | wall s (train + score) |",
             "|---|---|---|---|---|---|---|---|"]
    for d in digits:
        for r in sorted((r for r in rows if r["digit"] == d), key=lambda r: -r["auprc"]):
            lines.append(f"| {d} | {r['name']} | {r['method']}{'' if r['method'] == 'abp' else ' (alpha 0.1)'} | "
                         f"{r['limit'] or 'all'} | {r['epochs']:g} | {r['auprc']:.3f} | "
                         f"{r['anomaly_share']:.3f} | {r['wall_s']:.0f} |")
    lines += ["", "| digit | best here | shipped before | LEBM | paper (ours) |", "|---|---|---|---|---|"]
    for d in digits:
        best = max((r for r in rows if r["digit"] == d), key=lambda r: r["auprc"])
        lines.append(f"| {d} | {best['auprc']:.3f} ({best['name']}) | {SHIPPED_BEFORE[d]:.3f} | {LEBM[d]:.3f} | "
                     f"{PAPER[d]:.3f} |")
    errors = [r for r in results if "error" in r]
    if errors:
        lines += ["", "Failed: " + "; ".join(f"digit {r['digit']} {r['method']}: {r['error']}" for r in errors)]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--digits", default="4,1,5,7,9")
    p.add_argument("--variants", default="abp:3,ours-a0.1:3", help="METHOD:EPOCHS,... (methods: abp, ours-a0.1)")
    p.add_argument("--limit", type=int, default=0, help="training images (0 = all normal ones)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runs", default=str(ROOT / "runs" / "anomaly_recipe"))
    p.add_argument("--out", default=str(ROOT / "results" / "anomaly_recipe.md"))
    a = p.parse_args()
    t0, runs = time.time(), Path(a.runs)
    variants = [(m, float(e)) for m, e in (v.split(":") for v in a.variants.split(","))]
    jobs = [(int(d), m, e) for d in a.digits.split(",") for m, e in variants]
    done = [json.loads(f.read_text()) for f in sorted(runs.glob("*/result.json"))]  # earlier invocations' runs
    results = [r for r in done if (r["digit"], r["method_name"], r["epochs"], r.get("limit", 0)) not in
               {(d, m, e, a.limit) for d, m, e in jobs}]
    for r in results:
        r.setdefault("limit", 0)
        r.setdefault("name", Path(r["out"]).name)
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        for res in pool.map(lambda j: run(j[0], j[1], j[2], a.limit, runs), jobs):
            res.setdefault("name", "")
            results.append(res)
            report(results, Path(a.out), t0)


if __name__ == "__main__":
    main()
