"""Make the models in pretrained/, each with a manifest.json (data, config, metrics, commands, sha256).

    bash scripts/make_pretrained.sh                 # everything below
    bash scripts/make_pretrained.sh demo            # only the teaching demo
    bash scripts/make_pretrained.sh anomaly --digits 1 --runs /tmp/runs --out /tmp/pretrained

(the script is ``python -m scripts.make_pretrained`` from the repository root; the shell file runs it so.)

demo: `lvm.presets.DEMO`, the app's default run (MNIST digits 0 and 1, d = 2, MLP generator, Fig. 2's
    setting), written to pretrained/demo/config.json and trained by ``python -m lvm train --config``.
The rest packages the experiments' runs, so the shipped models are the ones the tables measure:
anomaly-D (``detectors``, what ships now): of ``python -m experiments.anomaly_recipe``'s runs for digit D
    (ABP and ours, all normal training images), the better one on its 2,000 test images, rescored on the
    whole MEG test split into test_scores.npz;
anomaly-D (``full-split``): the shipped detectors rescored in place on the whole MEG test split (K = 100,
    s = 0.1, one chain, seed 0), with that AUPRC, its chance level and the command in the manifest;
anomaly-D (``anomaly``, before): ``python -m experiments.table2``'s run of ours with seed 0 for digit D, rescored
    by the command line with the run's own config (run.json) and test-time inference (spec.json) into
    test_scores.npz (the app's histogram and precision-recall curve), which must reproduce the run's
    AUPRC exactly;
mnist, fashion: ``python -m experiments.table1``'s run of ours (seed 0);
fidc-mnist, fidc-fashion: the FID-C feature classifiers the experiments trained.
Shipped checkpoints drop what only resuming needs (optimizer state, OT warm start, targets).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from experiments._common import inference_args
from scripts.make_demo import demo, landing, preview_png
from scripts.packaging import ROOT, rel, run_lvm, write_manifest
from lvm import checkpoint
from lvm.config import InferenceConfig, load_config
from lvm.pretrained import sha256

def _slim_checkpoint(src: Path, dst: Path) -> None:
    """The run's checkpoint without what only resuming needs (optimizer, OT warm start, targets)."""
    state = checkpoint.load(src)
    checkpoint.save(dst, {k: v for k, v in state.items() if k not in ("optimizer", "ot_warm", "targets")})


def _run_commands(run: Path) -> list[str]:
    cmds = (run / "commands.txt").read_text().splitlines()
    return [c.replace(str(ROOT) + "/", "") for c in cmds if c.strip()]


def _fromrun_lvm(run: Path, experiment: str) -> Path:
    if not (run / "checkpoint.pt").is_file():
        raise SystemExit(f"{rel(run)} is missing: run `python -m experiments.{experiment}` first")
    return run


def anomaly(a: argparse.Namespace) -> None:
    """anomaly-D: Table 2's seed-0 run of ours for each held-out digit D, with its test scores for the app."""
    for d in (int(x) for x in a.digits.split(",")):
        run = _fromrun_lvm(a.runs / "table2" / f"ours-d{d}-s0", "table2")
        spec = json.loads((run / "spec.json").read_text())
        if not ("inference" in spec and (run / "run.json").is_file()):
            raise SystemExit(f"{rel(run)} was made before runs were configs (no run.json): run "
                             "`python -m experiments.table2` again into a fresh --runs directory")
        cfg, inference = load_config(run / "run.json"), InferenceConfig(**spec["inference"])
        if spec["holdout"] != d:
            raise SystemExit(f"{rel(run)}: its spec.json holds out digit {spec['holdout']}, not {d}")
        result = json.loads((run / "anomaly.json").read_text())
        out = a.out / f"anomaly-{d}"
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        _slim_checkpoint(run / "checkpoint.pt", out / "checkpoint.pt")
        shutil.copy(run / "metrics.jsonl", out / "metrics.jsonl")
        # the run's own test protocol and seed (its test subset), rescoring the shipped checkpoint
        rescored, score = run_lvm(["anomaly", "--checkpoint", rel(out / "checkpoint.pt"), "--holdout", str(d),
                                "--seed", str(cfg.seed), *inference_args(inference), "--threads", "1",
                                "--scores-out", rel(out / "test_scores.npz"), "--json"])
        if abs(rescored["auprc"] - result["auprc"]) > 1e-9:
            raise SystemExit(f"anomaly-{d}: rescoring gives AUPRC {rescored['auprc']}, the run gave {result['auprc']}")
        files = {"checkpoint": "checkpoint.pt", "metrics": "metrics.jsonl", "test_scores": "test_scores.npz"}
        write_manifest(out, f"Anomaly: MNIST with digit {d} held out (MEG split), d = {cfg.model.latent_dim}",
                  _run_commands(run) + [score], result, files, time.perf_counter() - t0, holdout=d,
                  test_steps=result["test_steps"], n_test=result["n_test"])


def detectors(a: argparse.Namespace) -> None:
    """anomaly-D from ``python -m experiments.anomaly_recipe``: of its runs for digit D (ABP and ours), the one
    with the higher AUPRC on the recipe's 2,000 test images, with those scores (``--full-split``: rescored on
    the whole MEG test split)."""
    digits = [int(x) for x in a.digits.split(",")]

    def package(d: int) -> None:
        runs = [r for r in sorted((a.runs / "anomaly_recipe").glob(f"*-d{d}-*")) if (r / "result.json").is_file()]
        if not runs:
            raise SystemExit(f"no finished run for digit {d} under {rel(a.runs / 'anomaly_recipe')}: run "
                             "`python -m experiments.anomaly_recipe` first")
        results = {r.name: json.loads((r / "result.json").read_text()) for r in runs}
        best = max(runs, key=lambda r: results[r.name]["auprc"])
        out = a.out / f"anomaly-{d}"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        t0 = time.perf_counter()
        _slim_checkpoint(best / "checkpoint.pt", out / "checkpoint.pt")
        shutil.copy(best / "metrics.jsonl", out / "metrics.jsonl")
        if a.full_split:  # the whole MEG test split, rescored from the shipped checkpoint
            full, score = run_lvm(["anomaly", "--checkpoint", rel(out / "checkpoint.pt"), "--holdout", str(d), "--seed",
                                "0", "--test-steps", "100", "--test-step-size", "0.1", "--restarts", "1", "--n", "0",
                                "--threads", "1", "--scores-out", rel(out / "test_scores.npz"), "--json"])
        else:  # the run's own scores of its seeded 2,000 test images, made by the command that trained it
            shutil.copy(best / "test_scores.npz", out / "test_scores.npz")
            full, score = dict(results[best.name]), None
            for k in ("out", "wall_s", "name", "method_name", "digit", "limit", "epochs"):
                full.pop(k, None)
        full["selection"] = {"n_test": 2000, "auprc": {name: r["auprc"] for name, r in results.items()},
                             "picked": best.name}
        cfg = load_config(best / "config.json")
        method = "ABP" if cfg.method == "abp" else f"ours (alpha {cfg.alpha:g})"
        train = (best / "command.txt").read_text().strip().replace(str(ROOT) + "/", "")
        images = f"the first {cfg.data.limit:,}" if cfg.data.limit else "all"
        write_manifest(out, f"Anomaly: MNIST with digit {d} held out (MEG split), {method}, {images} normal training "
                       f"images, {cfg.epochs:g} epochs",
                  [train] + ([score] if score else []), full, {"checkpoint": "checkpoint.pt", "metrics": "metrics.jsonl",
                                         "test_scores": "test_scores.npz"},
                  time.perf_counter() - t0, holdout=d, test_steps=full["test_steps"], n_test=full["n_test"])

    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # one scoring process per core
        list(pool.map(package, digits))


FULL_SPLIT_ARGS = ["--seed", "0", "--test-steps", "100", "--test-step-size", "0.1", "--restarts", "1", "--n", "0",
                   "--threads", "1"]  # the detectors' test protocol, on every image of the MEG test split


def _selection_mask(labels_len: int, n_selected: int, seed: int = 0) -> np.ndarray:
    """Which rows of the full split (in order) were in `lvm anomaly --seed SEED --n N`'s seeded subset."""
    mask = np.zeros(labels_len, bool)
    mask[np.random.RandomState(seed).permutation(labels_len)[:n_selected]] = True
    return mask


def full_split(a: argparse.Namespace) -> None:
    """anomaly-D in place: the shipped checkpoint rescored on the whole MEG test split (about 20,000 images) with
    the detectors' protocol (K = 100, s = 0.1, one chain, seed 0); its manifest gets that AUPRC and chance level,
    the AUPRC on the split without the 2,000 images it was selected on, and the command. The earlier metrics stay
    under metrics.subset. Each scoring is kept under --runs/full_split/anomaly-D (a rerun skips finished ones)."""
    from lvm import metrics as lvm_metrics
    for d in (int(x) for x in a.digits.split(",")):
        out = a.out / f"anomaly-{d}"
        manifest = json.loads((out / "manifest.json").read_text())
        if manifest["metrics"].get("n_test_split") == manifest["n_test"] and not a.force:
            print(f"anomaly-{d}: already scored on the full split", file=sys.stderr)
            continue
        stage = a.runs / "full_split" / f"anomaly-{d}"
        stage.mkdir(parents=True, exist_ok=True)
        done = stage / "result.json"
        if done.is_file() and json.loads(done.read_text())["sha256"] == manifest["files"]["checkpoint"]["sha256"]:
            saved = json.loads(done.read_text())
            result, command, seconds = saved["result"], saved["command"], saved["seconds"]
        else:
            t0 = time.perf_counter()
            result, command = run_lvm(["anomaly", "--checkpoint", rel(out / "checkpoint.pt"), "--holdout", str(d),
                                    *FULL_SPLIT_ARGS, "--scores-out", rel(stage / "test_scores.npz"), "--json"])
            seconds = time.perf_counter() - t0
            done.write_text(json.dumps({"result": result, "command": command, "seconds": seconds,
                                        "sha256": manifest["files"]["checkpoint"]["sha256"]}, indent=1))
        command = command.replace(rel(stage / "test_scores.npz"), rel(out / "test_scores.npz"))
        with np.load(stage / "test_scores.npz") as f:
            scores, labels = f["scores"], f["labels"]
        old = manifest["metrics"]
        sel = old.get("selection", {})
        full = {k: result[k] for k in ("holdout", "seed", "method", "n_test", "anomaly_share", "test_steps", "auprc")}
        full.update(n_test_split=len(labels), test_step_size=0.1, restarts=1, scoring_seconds=round(seconds, 1))
        if sel:  # the AUPRC on the images the detector was not picked on
            keep = ~_selection_mask(len(labels), sel["n_test"], old.get("seed", 0))
            full["unselected"] = {"n_test": int(keep.sum()), "anomaly_share": float(labels[keep].mean()),
                                  "auprc": lvm_metrics.auprc(scores[keep], labels[keep]),
                                  "what": f"the full split without the seeded {sel['n_test']:,} test images "
                                          f"(lvm anomaly --seed {old.get('seed', 0)} --n {sel['n_test']}) the "
                                          "detector was selected on"}
            full["selection"] = sel
        full["subset"] = {k: old[k] for k in ("seed", "n_test", "anomaly_share", "test_steps", "auprc") if k in old}
        shutil.copy(stage / "test_scores.npz", out / "test_scores.npz")
        manifest["metrics"] = full
        manifest["n_test"] = full["n_test"]
        manifest["commands"] = [c for c in manifest["commands"] if "--n 0" not in c] + [command]
        manifest["files"]["test_scores"]["sha256"] = sha256(out / "test_scores.npz")
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"anomaly-{d}: AUPRC {full['auprc']:.3f} on all {full['n_test']:,} test images (chance "
              f"{full['anomaly_share']:.3f}), {seconds:.0f} s", file=sys.stderr)


def budget(a: argparse.Namespace) -> None:
    """anomaly-D from ``python -m experiments.anomaly_budget``: the run --pick (a run directory's name under
    --runs/anomaly_budget), already scored on the whole MEG test split by ``anomaly_budget --final``, with those
    scores; its metrics hold the AUPRC on the split, without S0 (the 2,000 it was selected on) and on S0."""
    d = int(a.digits)
    run = a.runs / "anomaly_budget" / a.pick
    spec = json.loads((run / "spec.json").read_text())
    if spec["digit"] != d:
        raise SystemExit(f"{rel(run)} holds out digit {spec['digit']}, not {d}")
    full = [json.loads(f.read_text()) for f in run.glob("score-*-n0.json")]
    if len(full) != 1:
        raise SystemExit(f"{rel(run)}: run `python -m experiments.anomaly_budget --final` first")
    res = full[0]
    s = res["test_step_size"]
    subset = json.loads((run / f"score-s{s:g}-n2000.json").read_text())
    others = {f.parent.name + f" (s {json.loads(f.read_text())['test_step_size']:g})": json.loads(f.read_text())["auprc"]
              for f in (a.runs / "anomaly_budget").glob(f"*-d{d}-*/score-*-n2000.json")}
    out = a.out / f"anomaly-{d}"
    if (out / "manifest.json").exists():  # the detector it replaces was a candidate on the same S0
        old = json.loads((out / "manifest.json").read_text())["metrics"]
        if "subset" in old and "selection" in old:
            others[f"shipped before: {old['selection']['picked']} (s {old.get('test_step_size', 0.1):g})"] = \
                old["subset"]["auprc"]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _slim_checkpoint(run / "checkpoint.pt", out / "checkpoint.pt")
    shutil.copy(run / "metrics.jsonl", out / "metrics.jsonl")
    shutil.copy(run / f"test_scores-s{s:g}-n0.npz", out / "test_scores.npz")
    train = json.loads((run / "train.json").read_text())
    metrics = {k: res[k] for k in ("holdout", "seed", "method", "n_test", "anomaly_share", "test_steps", "auprc")}
    metrics.update(n_test_split=res["n_test"], test_step_size=s, restarts=1, scoring_seconds=round(res["seconds"], 1),
                   unselected={**res["unselected"], "what": "the full split without the seeded 2,000 test images "
                               "(lvm anomaly --seed 0 --n 2000) the detector was selected on"},
                   selection={"n_test": 2000, "auprc": others, "picked": f"{a.pick} (s {s:g})"},
                   subset={k: subset[k] for k in ("seed", "n_test", "anomaly_share", "test_steps", "auprc")},
                   training={"cpu_s": train["cpu_s"], "wall_s": train["wall_s"], "iterations": train["iteration"]})
    cfg = load_config(run / "run.json")
    method = "ABP" if cfg.method == "abp" else "VAE" if cfg.method == "vae" else f"ours (alpha {cfg.alpha:g})"
    command = res["command"] + f" --scores-out {rel(out / 'test_scores.npz')}"
    command = command.replace(f"{rel(run)}/checkpoint.pt", rel(out / "checkpoint.pt"))
    images = f"the first {cfg.data.limit:,}" if cfg.data.limit else "all the"
    write_manifest(out, f"Anomaly: MNIST with digit {d} held out (MEG split), {method}, sigma {cfg.langevin.sigma:g}, "
                   f"{images} normal training images, {cfg.epochs:.1f} epochs",
              [command], metrics, {"checkpoint": "checkpoint.pt", "metrics": "metrics.jsonl",
                                   "test_scores": "test_scores.npz"}, 0.0, holdout=d, test_steps=res["test_steps"],
              n_test=res["n_test"],
              made_by=f"python -m experiments.anomaly_budget --digits {d} --variants {spec['variant']} --budget "
                      f"{spec['budget']:g} --seeds {spec['seed']} (training in that process until the budget of CPU "
                      f"seconds was used; its config is the manifest's), then --final, which scored the run's "
                      f"checkpoint in that process through lvm.commands.anomaly, the function the command above "
                      f"calls, with the same arguments")


def generators(a: argparse.Namespace) -> None:
    """mnist and fashion: Table 1's runs of ours (seed 0), with their evaluation as metrics."""
    for data in a.data.split(","):
        run = _fromrun_lvm(a.runs / "table1" / f"{data}-ours-s0", "table1")
        evals = sorted(run.glob("eval-*.json"), key=lambda p: int(p.stem.split("-")[1]))
        if not evals:
            raise SystemExit(f"{rel(run)} has no evaluation yet: let `python -m experiments.table1` finish")
        out = a.out / data
        out.mkdir(parents=True, exist_ok=True)
        _slim_checkpoint(run / "checkpoint.pt", out / "checkpoint.pt")
        shutil.copy(run / "metrics.jsonl", out / "metrics.jsonl")
        result = {k: v for k, v in json.loads(evals[-1].read_text()).items() if k != "checkpoint"}
        name = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}[data]
        write_manifest(out, f"Generator: {name}, d = 16 (Table 1's run of ours)", _run_commands(run), result,
                  {"checkpoint": "checkpoint.pt", "metrics": "metrics.jsonl"}, 0.0)


def classifiers(a: argparse.Namespace) -> None:
    """fidc-DATA: the FID-C feature classifiers the experiments trained (runs/fidc-DATA.pt)."""
    for data in a.data.split(","):
        src, info = a.runs / f"fidc-{data}.pt", a.runs / f"fidc-{data}.json"
        if not (src.is_file() and info.is_file()):
            raise SystemExit(f"{rel(src)} is missing: run `python -m experiments.table1` first")
        out = a.out / f"fidc-{data}"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, out / "classifier.pt")
        meta = json.loads(info.read_text())
        manifest = {"title": f"FID-C feature classifier: {data}", "kind": "classifier", "data": {"name": data},
                    "metrics": {k: v for k, v in meta.items() if k not in ("command", "out")},
                    "commands": [meta["command"].replace(str(ROOT) + "/", "")],
                    "torch": torch.__version__,
                    "files": {"classifier": {"path": "classifier.pt", "sha256": sha256(out / "classifier.pt")}}}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote {out / 'manifest.json'}", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", nargs="*", help="demo, landing (the demo's eval figures, q(z^K) pictures and ABP trained the same way, without retraining it), preview-png (the demo's landing pictures, redrawn), "
                                            "anomaly (Table 2's runs), detectors (the full-data recipe's "
                                            "runs, into the same anomaly-D folders), full-split (the shipped "
                                            "anomaly-D rescored on the whole test split, in place), generators, "
                                            "classifiers (default: all but detectors and full-split)")
    p.add_argument("--runs", type=Path, default=ROOT / "runs", help="the experiments' run directories")
    p.add_argument("--out", type=Path, default=ROOT / "pretrained", help="where the model folders go")
    p.add_argument("--digits", default="1,4,5,7,9", help="anomaly: the held-out digits to package")
    p.add_argument("--data", default="mnist,fashion", help="generators and classifiers: the data sets")
    p.add_argument("--full-split", action="store_true",
                   help="detectors: rescore on the whole MEG test split (about 20,000 images) instead of shipping "
                        "the run's own scores of its 2,000")
    p.add_argument("--pick", default="", help="budget: the run directory (under --runs/anomaly_budget) to ship")
    p.add_argument("--force", action="store_true", help="full-split: rescore a detector already scored so")
    a = p.parse_args()
    makers = {"demo": demo, "landing": landing, "preview-png": preview_png, "anomaly": anomaly, "detectors": detectors,
              "generators": generators, "classifiers": classifiers, "full-split": full_split, "budget": budget}
    unknown = set(a.which) - set(makers)
    if unknown:
        p.error(f"unknown model(s) {sorted(unknown)}; choose from {sorted(makers)}")
    for w in a.which or [m for m in makers if m not in ("landing", "preview-png", "detectors", "full-split", "budget")]:
        makers[w](a)


if __name__ == "__main__":
    main()
