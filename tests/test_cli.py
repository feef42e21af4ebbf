"""Smoke tests of ``python -m lvm`` in a subprocess, as a user runs it (real MNIST digits 0 and 1)."""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lvm import commands, metrics
from lvm.checkpoint import load
from lvm.classifier import Classifier, save_classifier
from lvm.config import DataConfig
from lvm.data import load as load_data

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--data", "mnist", "--classes", "0,1", "--latent-dim", "2", "--limit", "300",
         "--ot-every", "2", "--json"]  # batch 128: 3 iterations per epoch, one correction


def lvm(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI from the repository root with the caller's environment."""
    return subprocess.run([sys.executable, "-m", "lvm", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=600)


def _ok(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One epoch of training; later tests read its checkpoint but never write into it."""
    out = tmp_path_factory.mktemp("cli") / "run"
    return out, _ok(lvm(*TRAIN, "--epochs", "1", "--out", str(out)))


def test_train_writes_a_checkpoint_and_a_metrics_log(run) -> None:
    out, result = run
    assert {"checkpoint", "iterations", "seconds", "latent_ot_cost", "prior_ot_cost"} <= result.keys()
    assert result["iterations"] == 3 and Path(result["checkpoint"]) == out / "checkpoint.pt"
    assert math.isfinite(result["latent_ot_cost"]) and result["prior_ot_cost"] > 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2, 3]
    assert "unmatched" in records[1] and "chain_fit" in records[1]  # the correction at L = 2
    assert {"chains_w2sq", "q_w2sq", "q_mse", "q_prior_mse"} <= records[1].keys() and "q_w2sq" not in records[0]
    state = load(out / "checkpoint.pt")
    assert state["iteration"] == 3 and state["latents"].shape == (300, 2)
    assert tuple(state["config"]["data"]["classes"]) == (0, 1)


def test_eval_prints_finite_figures(run) -> None:
    out, _ = run
    result = _ok(lvm("eval", str(out / "checkpoint.pt"), "--json", "--n", "200", "--test-steps", "10"))
    assert result["n_test"] == 200 and result["test_steps"] == 10
    for key in ("mse", "latent_ot_cost", "latent_mmd", "q_ot_cost", "q_w2sq", "chains_w2sq", "test_w2sq", "q_mse",
                "q_prior_mse", "on_prior_w2sq", "w2sq_sd"):
        assert math.isfinite(result[key]), key
    assert result["on_prior_w2sq"] > 0 and result["w2sq_n"] == 300 and result["q_mse"] < result["q_prior_mse"]
    x = load_data(DataConfig(classes=(0, 1), limit=300), "test").x[:200]  # the 200 test images eval used
    untrained = float(((x - 0.5) ** 2).mean())  # an untrained generator draws about 0.5 (sigmoid(0)) everywhere
    assert result["mse"] < 0.9 * untrained  # measured 0.203 against 0.235 after the fixture's 3 iterations


def test_eval_draws_the_fid_c_sample_apart_from_the_mse_sample(run, tmp_path: Path) -> None:
    out, _ = run
    save_classifier(Classifier(), tmp_path / "clf.pt")  # untrained: features still separate the two samples
    args = ["eval", str(out / "checkpoint.pt"), "--json", "--n", "50", "--test-steps", "5",
            "--classifier", str(tmp_path / "clf.pt")]
    result = _ok(lvm(*args, "--fid-n", "250"))
    assert result["n_test"] == 50 and result["fid_n"] == 250 and result["fid_c"] > 0
    assert _ok(lvm(*args, "--fid-n", "250"))["fid_c"] == result["fid_c"]  # seeded


def test_score_reports_each_file(run, tmp_path: Path) -> None:
    out, _ = run
    digit = load_data(DataConfig(classes=(1,), limit=1), "test").x[0, 0]  # (28, 28) in [0, 1]
    png = tmp_path / "one.png"
    Image.fromarray((digit.numpy() * 255).round().astype(np.uint8)).save(png)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    result = _ok(lvm("score", str(out / "checkpoint.pt"), str(png), str(text), "--json", "--test-steps", "10"))
    good, bad = result["scores"]
    assert good["image"] == str(png) and math.isfinite(good["score"]) and "error" not in good
    assert bad["image"] == str(text) and "notes.txt" in bad["error"] and "score" not in bad


def test_anomaly_refuses_a_model_of_two_digits(run) -> None:
    out, _ = run
    proc = lvm("anomaly", "--holdout", "4", "--checkpoint", str(out / "checkpoint.pt"))
    assert proc.returncode == 2
    assert "MEG split" in proc.stderr and "Traceback" not in proc.stderr


def test_anomaly_refuses_a_scores_file_in_a_missing_folder_before_scoring(run, tmp_path: Path) -> None:
    out, _ = run
    proc = lvm("anomaly", "--holdout", "4", "--checkpoint", str(out / "checkpoint.pt"),
               "--scores-out", str(tmp_path / "no" / "s.npz"))
    assert proc.returncode == 2 and "its folder does not exist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("flag,value,word", [("--alpha", "2", "alpha"), ("--classes", "a,b", "classes")])
def test_invalid_flag_values_give_a_clean_error(tmp_path: Path, flag: str, value: str, word: str) -> None:
    proc = lvm(*TRAIN, "--epochs", "1", "--out", str(tmp_path / "bad"), flag, value)
    assert proc.returncode == 2
    assert word in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "bad" / "checkpoint.pt").exists()


def test_train_resume_continues_the_iterations(run, tmp_path: Path) -> None:
    src, _ = run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    result = _ok(lvm(*TRAIN, "--epochs", "2", "--out", str(out), "--resume"))
    assert result["iterations"] == 6
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert load(out / "checkpoint.pt")["iteration"] == 6


@pytest.mark.slow
def test_max_seconds_stops_a_long_run_checkpointed_and_resume_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _ok(lvm(*TRAIN, "--epochs", "1000", "--max-seconds", "0.01", "--out", str(out)))
    assert first["iterations"] == 1 and first["of_iterations"] == 3000  # stops after the iteration that spent it
    assert load(out / "checkpoint.pt")["iteration"] == 1
    again = _ok(lvm(*TRAIN, "--epochs", "1", "--max-seconds", "600", "--resume", "--out", str(out)))
    assert again["iterations"] == again["of_iterations"] == 3


@pytest.mark.slow
def test_anomaly_trains_on_the_meg_split_and_scores_it_again(tmp_path: Path) -> None:
    out = tmp_path / "anomaly"
    small = ["--n", "300", "--test-steps", "5", "--json"]
    first = _ok(lvm("anomaly", "--holdout", "4", "--latent-dim", "2", "--limit", "300", "--epochs", "1",
                    "--out", str(out), *small))
    # 3 iterations on 300 images score at chance (measured AUPRC 0.372 at an anomaly share of 0.373): this test
    # checks the command's plumbing; test_pretrained checks a trained detector's AUPRC against its chance level
    assert first["n_test"] == 300 and 0.2 < first["anomaly_share"] < 0.55
    again = _ok(lvm("anomaly", "--holdout", "4", "--checkpoint", str(out / "checkpoint.pt"), *small,
                    "--scores-out", str(tmp_path / "scores.npz")))
    assert again["auprc"] == first["auprc"]  # same model, same seeded test-time inference
    with np.load(tmp_path / "scores.npz") as f:  # what pretrained/anomaly-D ships for the app
        assert f["scores"].shape == f["labels"].shape == (300,)
        assert metrics.auprc(f["scores"], f["labels"]) == first["auprc"]


@pytest.mark.slow
def test_a_diverging_run_keeps_its_last_finite_state_and_resumes_with_a_lower_setting(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = lvm(*TRAIN, "--epochs", "1", "--step-size", "50", "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "lower the Langevin step size s (now 50.0)" in proc.stderr and "iteration 0" in proc.stderr
    state = load(out / "checkpoint.pt")
    assert state["iteration"] == 0 and np.isfinite(state["latents"].numpy()).all()
    result = _ok(lvm(*TRAIN, "--epochs", "1", "--step-size", "0.1", "--resume", "--out", str(out)))
    assert result["iterations"] == 3 and math.isfinite(result["latent_ot_cost"])
    assert load(out / "checkpoint.pt")["config"]["langevin"]["step_size"] == 0.1


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [sys.executable, "-m", "lvm", *TRAIN, "--epochs", "30", "--checkpoint-every", "1", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "metrics.jsonl"
    t0 = time.monotonic()
    while not (log.exists() and len(log.read_text().splitlines()) >= 5):  # saving a checkpoint every iteration
        assert proc.poll() is None and time.monotonic() - t0 < 300
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no clean-up at all, possibly in the middle of a save
    proc.wait()
    killed_at = load(out / "checkpoint.pt")["iteration"]  # the last complete save, never a torn file
    assert 4 <= killed_at < 90
    result = _ok(lvm(*TRAIN, "--epochs", "30", "--checkpoint-every", "1", "--resume", "--out", str(out)))
    assert result["iterations"] == 90
    assert [json.loads(ln)["iteration"] for ln in log.read_text().splitlines()] == list(range(1, 91))


@pytest.mark.slow
def test_train_config_runs_exactly_the_run_its_config_json_describes(run, tmp_path: Path) -> None:
    """OUT/config.json is asdict(cfg); `train --config` on it gives the same checkpoint, byte for byte."""
    src, _ = run
    again = _ok(lvm("train", "--config", str(src / "config.json"), "--out", str(tmp_path / "again"), "--json"))
    assert again["iterations"] == 3
    assert (tmp_path / "again" / "checkpoint.pt").read_bytes() == (src / "checkpoint.pt").read_bytes()
    # a flag given beside --config changes that one setting
    _ok(lvm("train", "--config", str(src / "config.json"), "--epochs", "0.5", "--out", str(tmp_path / "half"),
            "--json"))
    cfg = json.loads((tmp_path / "half" / "config.json").read_text())
    assert cfg["epochs"] == 0.5 and cfg["data"]["limit"] == 300 and cfg["model"]["arch"] == "mlp"


def test_a_config_file_with_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"method": "ours", "alpah": 0.5}))
    proc = lvm("train", "--config", str(tmp_path / "run.json"), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "alpah" in proc.stderr and "Traceback" not in proc.stderr


def test_score_takes_folders_and_globs_and_gives_a_verdict_against_a_reference(run, tmp_path: Path) -> None:
    out, _ = run
    digits = load_data(DataConfig(classes=(1,), limit=3), "test").x[:, 0]
    (tmp_path / "a" / "deeper").mkdir(parents=True)
    for i, name in enumerate(("a/x.png", "a/deeper/y.png", "z.png")):
        Image.fromarray((digits[i].numpy() * 255).round().astype(np.uint8)).save(tmp_path / name)
    (tmp_path / "a" / "readme.txt").write_text("not taken from a folder")
    ref = tmp_path / "reference.json"
    ref.write_text(json.dumps(commands.reference(np.arange(100.0) * 10, 0.05)))  # threshold 940.5
    result = _ok(lvm("score", str(out / "checkpoint.pt"), str(tmp_path / "a"), str(tmp_path / "z*.png"),
                     "--reference", str(ref), "--json", "--test-steps", "10"))
    rows = result["scores"]
    assert [Path(r["image"]).name for r in rows] == ["y.png", "x.png", "z.png"]  # folder sorted, then the glob
    for r in rows:
        assert 0 <= r["percentile"] <= 100 and r["verdict"] == ("anomalous" if r["score"] > 940.5 else "normal")
        assert r["percentile"] == min(100, np.floor(r["score"] / 10) + 1)  # normal scores <= it, of 100
    assert result["reference"]["threshold"] == pytest.approx(940.5)
    one = _ok(lvm("score", str(out / "checkpoint.pt"), str(tmp_path / "z.png"), "--json", "--test-steps", "10"))
    assert one["scores"][0]["score"] == pytest.approx(rows[2]["score"], rel=1e-4)  # alone or with others


def _save_digits(folder: Path, classes: tuple[int, ...], n: int, split: str = "test") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    x = load_data(DataConfig(classes=classes, limit=n), split).x[:, 0]
    for i, d in enumerate(x):
        Image.fromarray((d.numpy() * 255).round().astype(np.uint8)).save(folder / f"{i:03d}.png")


@pytest.mark.slow
def test_anomaly_on_a_flat_folder_of_normal_images_writes_a_reference_that_score_reads(tmp_path: Path) -> None:
    _save_digits(tmp_path / "normal", (1,), 60, "train")  # flat: no class subfolders
    _save_digits(tmp_path / "test" / "normal", (1,), 10)
    _save_digits(tmp_path / "test" / "anomaly", (0,), 10)
    out = tmp_path / "run"
    result = _ok(lvm("anomaly", "--data", "folder", "--root", str(tmp_path / "normal"), "--test-root",
                     str(tmp_path / "test"), "--out", str(out), "--epochs", "1", "--batch-size", "16",
                     "--latent-dim", "2", "--arch", "mlp", "--test-steps", "10", "--false-alarm", "0.1", "--json"))
    ref = json.loads((out / "reference.json").read_text())
    assert result["n_train"] == 48 and result["n_held_out"] == 12 == ref["n"] == len(ref["scores"])
    assert ref["threshold"] == pytest.approx(np.quantile(ref["scores"], 0.9)) == pytest.approx(result["threshold"])
    # 3 iterations on 48 images: near chance (measured AUPRC 0.567, chance 0.5), so the figures are checked
    # against the scores `score` gives the same files below, not against a quality bar
    assert result["n_test"] == 20 and result["anomaly_share"] == 0.5
    scored = _ok(lvm("score", str(out / "checkpoint.pt"), str(tmp_path / "test"), "--test-steps", "10", "--json"))
    assert scored["reference"]["n"] == 12 and len(scored["scores"]) == 20
    flagged = {Path(r["image"]).parent.name: 0 for r in scored["scores"]}
    for r in scored["scores"]:
        assert r["verdict"] == ("anomalous" if r["score"] > ref["threshold"] else "normal")
        flagged[Path(r["image"]).parent.name] += r["verdict"] == "anomalous"
    assert flagged["anomaly"] / 10 == pytest.approx(result["recall"])  # the same scores as the report's
    assert flagged["normal"] / 10 == pytest.approx(result["test_false_alarm"])
    labels = np.array([Path(r["image"]).parent.name == "anomaly" for r in scored["scores"]], dtype=np.float32)
    scores = np.array([r["score"] for r in scored["scores"]])
    assert metrics.auprc(scores, labels) == pytest.approx(result["auprc"], abs=1e-6)
    bad = lvm("anomaly", "--data", "folder", "--root", str(tmp_path / "normal"), "--test-root", str(tmp_path),
              "--out", str(out), "--epochs", "1", "--latent-dim", "2", "--arch", "mlp")
    assert bad.returncode == 2 and "normal/ and anomaly/" in bad.stderr and "Traceback" not in bad.stderr


DEMO_CKPT = ROOT / "pretrained" / "demo" / "checkpoint.pt"
needs_demo = pytest.mark.skipif(not DEMO_CKPT.exists(), reason="pretrained/demo is missing")


@pytest.mark.slow
@needs_demo
def test_restarts_keep_the_best_chain_and_test_refine_lowers_each_score(tmp_path: Path) -> None:
    """--restarts R keeps each image's lowest-energy chain of R (a better fit than one chain); --test-refine adds
    noise-free descent steps, which can only lower each image's energy (its anomaly score)."""
    args = ["eval", str(DEMO_CKPT), "--json", "--n", "200", "--test-steps", "10"]
    one, four = _ok(lvm(*args, "--restarts", "1")), _ok(lvm(*args, "--restarts", "4"))
    assert (one["restarts"], four["restarts"]) == (1, 4)
    assert four["mse"] < 0.97 * one["mse"], (one["mse"], four["mse"])
    digits = load_data(DataConfig(classes=(0, 1), limit=4), "test").x[:, 0]
    for i, d in enumerate(digits):
        Image.fromarray((d.numpy() * 255).round().astype(np.uint8)).save(tmp_path / f"{i}.png")
    score = ["score", str(DEMO_CKPT), str(tmp_path), "--json", "--test-steps", "10"]
    plain = [r["score"] for r in _ok(lvm(*score))["scores"]]
    refined = [r["score"] for r in _ok(lvm(*score, "--test-refine", "30"))["scores"]]
    assert len(plain) == 4 and all(r < p for r, p in zip(refined, plain)), (plain, refined)


@pytest.mark.slow
def test_noise_init_and_learn_steps_from_the_command_line(tmp_path: Path) -> None:
    """--noise-init trains without persistent chains and --learn-steps 2 takes two Adam steps per batch."""
    out = tmp_path / "run"
    result = _ok(lvm(*TRAIN, "--epochs", "1", "--noise-init", "--learn-steps", "2", "--out", str(out)))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["persistent"] is False and cfg["learn_steps"] == 2 and result["iterations"] == 3
    state = load(out / "checkpoint.pt")
    steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {6}  # 3 iterations x 2 Adam steps, for every parameter


@pytest.mark.slow
def test_bench_langevin_prints_a_rate_for_every_generator() -> None:
    from lvm.config import ModelConfig
    from lvm.models import build_generator, n_params

    proc = subprocess.run([sys.executable, "-m", "lvm", "bench", "langevin", "--batch-size", "4", "--steps", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in proc.stdout.splitlines()
            if ln.startswith(("| mlp", "| conv"))]
    assert [(r[0], r[1], r[2]) for r in rows] == [("mlp", "2", "1x28x28"), ("conv", "16", "1x28x28"),
                                                  ("conv", "64", "1x28x28"), ("conv", "64", "3x32x32"),
                                                  ("conv", "64", "3x64x64")]
    for arch, d, image, params, rate in rows:
        ch, size, _ = (int(v) for v in image.split("x"))
        assert int(params.replace(",", "")) == n_params(build_generator(ModelConfig(int(d), arch, size, ch)))
        assert float(rate.replace(",", "")) > 0
    assert "batch 4, K = 2" in proc.stdout


def _idx_files(raw: Path, arrays: dict[str, np.ndarray]) -> None:
    """MNIST as torchvision's raw IDX files (what its download leaves), from the cache's arrays."""
    raw.mkdir(parents=True)
    for stem, split in (("train", "train"), ("t10k", "test")):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        (raw / f"{stem}-images-idx3-ubyte").write_bytes(
            (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in x.shape) + x.tobytes())
        (raw / f"{stem}-labels-idx1-ubyte").write_bytes(
            (0x801).to_bytes(4, "big") + len(y).to_bytes(4, "big") + y.tobytes())


@pytest.mark.slow
def test_fetch_builds_the_mnist_cache_offline_and_then_reads_it(tmp_path: Path) -> None:
    """`lvm fetch mnist` in an empty data folder with no wheel: torchvision's route finds the raw files in place
    and the cache is written, the same bytes as the one the tests use; a second fetch only reads it."""
    from lvm.data import fetch_mnist

    with np.load(fetch_mnist()) as f:
        good = {k: f[k] for k in f.files}
    _idx_files(tmp_path / "MNIST" / "raw", good)
    env = {**os.environ, "LVM_DATA_DIR": str(tmp_path), "LVM_MNIST_WHEEL": str(tmp_path / "no-such.whl")}
    run = lambda: subprocess.run([sys.executable, "-m", "lvm", "fetch", "mnist"], cwd=ROOT, env=env,  # noqa: E731
                                 capture_output=True, text=True, timeout=600)
    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.strip() == f"mnist: 70000 images ready in {tmp_path}"
    with np.load(tmp_path / "mnist.npz") as f:
        assert all(np.array_equal(f[k], good[k]) for k in good)
    shutil.rmtree(tmp_path / "MNIST")  # nothing to rebuild from: the second fetch must read the cache
    again = run()
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr[-2000:]


@pytest.mark.slow
def test_classifier_trains_above_chance_and_eval_reads_it(run, tmp_path: Path) -> None:
    """`lvm classifier` trains on all of MNIST's training split: its test accuracy (chance 0.1) is what the saved
    file gives, and eval takes the file for FID-C."""
    from lvm.classifier import accuracy, load_classifier

    clf = tmp_path / "clf.pt"
    result = _ok(lvm("classifier", "--data", "mnist", "--epochs", "1", "--out", str(clf), "--json", "--threads", "2"))
    assert result["test_accuracy"] > 0.9  # measured 0.98 after one epoch
    test = load_data(DataConfig(limit=0), "test")
    assert accuracy(load_classifier(clf), test.x, test.y) == pytest.approx(result["test_accuracy"], abs=1e-9)
    out, _ = run
    fid = _ok(lvm("eval", str(out / "checkpoint.pt"), "--json", "--n", "50", "--test-steps", "5", "--classifier",
                  str(clf), "--fid-n", "250"))
    assert fid["fid_c"] > 0
