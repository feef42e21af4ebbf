"""What every experiment script shares: resumable CLI runs described by configs, progress lines, reports.

A run is a `Run`: its `TrainConfig`, its stages (epochs at the end of each) and its `EvalSpec`
(the shared test-time `InferenceConfig` and the FID-C classifier). Each training is its own
``python -m lvm train --config run.json`` subprocess into ``<runs>/<experiment>/<name>/`` and
each evaluation its own ``python -m lvm eval --json``. A run directory holds:

    spec.json        the run as the script described it: {"train": asdict(TrainConfig), "eval":
                     asdict(EvalSpec), "stages" or "budget_s"}; other settings later are refused
    run.json         the run's TrainConfig (`save_config`); every stage is ``train --config run.json
                     --epochs E --resume``; how it is executed (threads, checkpoint cadence) is given beside
    config.json      written by the CLI: the config the run goes on with (its checkpoint's)
    commands.txt     every command launched for it, in order
    checkpoint.pt    the CLI's checkpoint; metrics.jsonl, its per-iteration log
    train-K.json     stage K of training finished (the CLI's --json output)
    stage-K.pt       a copy of the checkpoint at the end of stage K (figures and staged evals read it)
    eval-K.json      the evaluation of stage K; the last stage's is the run's result
    diverged.json    the CLI stopped with "training diverged" (exit code 2): reported, never retried

A stage whose ``eval-K.json`` exists is skipped; a stage whose training was killed is continued
with ``train --resume`` (the CLI goes on from its last checkpoint). Ctrl-C stops the script and
its subprocess; running the same command again picks up where it stopped. Scripts run as modules
from the repository root: ``python -m experiments.table2 ...``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lvm.config import InferenceConfig, TrainConfig, from_dict, save_config

ROOT = Path(__file__).resolve().parents[1]

# Shared settings of every experiment (PROTOCOL sections 2-3); each table states them.
TEST_STEPS = 100        # test-time Langevin steps from the prior, the same for every method
TEST_STEP_SIZE = 0.1    # test-time s, fixed so that models trained with other s are inferred alike
RESTARTS = 1            # test-time chains per image
LATENT_DIM = 16         # d for MNIST and Fashion-MNIST (Table 1, 2, ablations)
PAPER_URL = "An, Xie, Li, CVPR 2021 (seed/000_e004c5566aaf2d87.txt)"


class Clock:
    """Elapsed time since the script started, for progress lines."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.started = time.strftime("%Y-%m-%d %H:%M:%S")

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def log(self, msg: str) -> None:
        s = int(self.elapsed())
        print(f"[{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}] {msg}", flush=True)


def add_common_flags(p: argparse.ArgumentParser, experiment: str) -> None:
    """--quick, --out, --runs, --threads, --checkpoint-every: the flags every script takes."""
    p.prog = f"python -m experiments.{experiment}"
    p.add_argument("--quick", action="store_true", help="tiny smoke settings (well under a minute), for tests")
    p.add_argument("--out", type=Path, default=ROOT / "results", help="directory for the markdown table and PNGs")
    p.add_argument("--runs", type=Path, default=ROOT / "runs", help=f"run directories go to RUNS/{experiment}/")
    p.add_argument("--threads", type=int, default=1, help="torch threads per CLI process (one process at a time)")
    p.add_argument("--checkpoint-every", type=int, default=50, help="iterations between checkpoints (resume points)")


def seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def floats(text: str) -> list[float]:
    return [float(s) for s in text.split(",") if s.strip()]


def _rel(p: Path | str) -> str:
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


# ---- subprocesses of the CLI --------------------------------------------------------------------

class CLIError(RuntimeError):
    """A CLI call failed for a reason other than divergence; the message holds its stderr tail."""


def lvm(args: list[str], log: Path | None = None) -> tuple[int, str, str]:
    """Run ``python -m lvm ARGS`` from the repository root; its progress bar goes to our stderr.

    Returns (exit code, stdout, last 4,000 characters of stderr). The command line is appended
    to `log` (a run's commands.txt) before it starts.
    """
    cmd = [sys.executable, "-m", "lvm", *args]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write("python -m lvm " + shlex.join(args) + "\n")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail = b""
    try:
        while chunk := os.read(proc.stderr.fileno(), 4096):  # tqdm redraws with \r: pass chunks on as they come
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            tail = (tail + chunk)[-4000:]
        out = proc.stdout.read()
        rc = proc.wait()
    except BaseException:  # Ctrl-C or an error here: never leave the child running
        proc.kill()
        proc.wait()
        raise
    return rc, out.decode(), tail.decode(errors="replace")


def _json_out(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise CLIError(f"no JSON on stdout: {stdout[-500:]!r}")
    return json.loads(lines[-1])


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def metrics(run_dir: Path) -> list[dict]:
    """The per-iteration records of metrics.jsonl (complete lines only)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip().endswith("}")]


def train_seconds(run_dir: Path) -> float:
    """Time spent in training iterations (sum of the log's per-iteration seconds; survives resumes)."""
    return sum(r["seconds"] for r in metrics(run_dir))


# ---- one run: staged training and evaluation ----------------------------------------------------

def inference_args(inference: InferenceConfig) -> list[str]:
    """The test-time flags of ``lvm eval`` / ``lvm anomaly`` that make the CLI build `inference` back."""
    args = ["--n", str(inference.n), "--test-steps", str(inference.steps)]
    if inference.step_size is not None:  # None: the model's own training s, the CLI's default
        args += ["--test-step-size", str(inference.step_size)]
    return args + ["--restarts", str(inference.restarts)]


def protocol(n: int, steps: int = TEST_STEPS) -> InferenceConfig:
    """The shared test-time protocol (PROTOCOL sec. 2): K, s and restarts fixed, n test images."""
    return InferenceConfig(steps=steps, step_size=TEST_STEP_SIZE, restarts=RESTARTS, n=n)


@dataclass(frozen=True)
class EvalSpec:
    """What every stage's ``lvm eval`` is given."""

    inference: InferenceConfig          # test-time Langevin from the prior, the same for every method
    classifier: str = ""                # FID-C classifier file (`classifier`); "" = no FID-C

    def args(self) -> list[str]:
        return inference_args(self.inference) + (["--classifier", self.classifier] if self.classifier else [])


def shared_eval(n: int, clf: Path | None, steps: int = TEST_STEPS) -> EvalSpec:
    """`protocol` on n test images, with FID-C when a classifier is given."""
    return EvalSpec(protocol(n, steps), str(clf) if clf else "")


@dataclass
class Run:
    """One training run: its config, its stages (epochs at the end of each) and its evaluation.

    `stages` defaults to ``[train.epochs]``. `budget_s`, when set, replaces fixed stages: training
    starts with ``train.epochs`` (a first chunk, to measure the speed) and continues with
    ``--resume`` and a larger ``--epochs`` until the iterations have used that many seconds
    (Table 1's wall-clock budget); the run is then evaluated once.
    """
    directory: Path
    train: TrainConfig
    eval: EvalSpec
    stages: list[float] = field(default_factory=list)
    budget_s: float = 0.0

    def __post_init__(self) -> None:
        self.stages = list(self.stages) or [self.train.epochs]

    @property
    def name(self) -> str:
        return f"{self.directory.parent.name}/{self.directory.name}"

    def spec(self) -> dict:
        """What spec.json holds: the run's settings, never how it is executed (threads, checkpoint cadence)."""
        when = {"budget_s": self.budget_s} if self.budget_s else {"stages": self.stages}
        return {"train": asdict(self.train), "eval": asdict(self.eval), **when}

    def diverged(self) -> dict | None:
        return read_json(self.directory / "diverged.json")

    def result(self) -> dict | None:
        """The last stage's eval, once there is one."""
        return read_json(self.directory / f"eval-{len(self.stages) - 1}.json")

    def stage_results(self) -> list[tuple[dict, dict]]:
        """(train, eval) of every finished stage, in order."""
        out = []
        for k in range(len(self.stages)):
            t, e = read_json(self.directory / f"train-{k}.json"), read_json(self.directory / f"eval-{k}.json")
            if t is None or e is None:
                break
            out.append((t, e))
        return out


def _same_settings(old: dict, spec: dict) -> bool:
    """spec.json against the settings asked for now. The TrainConfigs compare as configs (`from_dict`
    fills a setting added to TrainConfig since with its default), so such a setting orphans no run."""
    try:
        old = {**old, "train": asdict(from_dict(old["train"]))}
    except (KeyError, TypeError, ValueError):  # no config, or one from before runs were configs
        return False
    return json.loads(json.dumps(old)) == json.loads(json.dumps(spec))


def check_spec(directory: Path, spec: dict) -> Path:
    """Record a run's settings on first use; refuse to continue a run made with other settings.

    `spec` holds the run's TrainConfig as "train" (asdict); it also goes to DIRECTORY/run.json,
    what ``train --config`` reads. Returns that path.
    """
    path = directory / "spec.json"
    old = read_json(path)
    if old is None:
        directory.mkdir(parents=True, exist_ok=True)
        write_json(path, spec)
    elif not _same_settings(old, spec):
        flags = any(isinstance(v, list) and v and isinstance(v[0], str) for v in old.values())
        why = "before runs were configs (its spec.json holds flag lists)" if flags else "with other settings"
        raise SystemExit(f"error: {_rel(directory)} was made {why} ({_rel(path)}); "
                         "pass another --runs directory or delete that run directory")
    return save_config(from_dict(spec["train"]), directory / "run.json")


def call(directory: Path, args: list[str]) -> dict | None:
    """A CLI call that prints JSON; None when it stopped with "training diverged" (diverged.json written)."""
    rc, out, err = lvm(args, directory / "commands.txt")
    if rc == 2 and "diverged" in err:
        msg = next((ln for ln in reversed(err.splitlines()) if "diverged" in ln), err[-500:])
        write_json(directory / "diverged.json", {"command": shlex.join(args), "message": msg.strip()})
        return None
    if rc != 0:
        raise CLIError(f"{_rel(directory)}: `python -m lvm {args[0]}` exited with {rc}:\n{err[-2000:]}")
    return _json_out(out)


def _train(run: Run, epochs: float, threads: int, ckpt_every: int) -> dict | None:
    """``train --resume`` up to `epochs`; None when the CLI reported divergence."""
    return call(run.directory, ["train", "--config", str(run.directory / "run.json"), "--epochs", f"{epochs:.6g}",
                                "--out", str(run.directory), "--resume", "--json", "--threads", str(threads),
                                "--checkpoint-every", str(ckpt_every)])


def _evaluate(run: Run, ckpt: Path, threads: int) -> dict:
    rc, out, err = lvm(["eval", str(ckpt), *run.eval.args(), "--json", "--threads", str(threads)],
                       run.directory / "commands.txt")
    if rc != 0:
        raise CLIError(f"{run.name}: eval exited with {rc}:\n{err[-2000:]}")
    return _json_out(out)


def execute(run: Run, clock: Clock, threads: int = 1, ckpt_every: int = 50) -> None:
    """Bring `run` to its last stage, trained and evaluated; skip what is done, resume what was killed."""
    check_spec(run.directory, run.spec())
    if run.diverged():
        clock.log(f"{run.name}: diverged earlier, not retried ({run.diverged()['message'][:120]})")
        return
    if run.result() is not None:
        clock.log(f"{run.name}: done earlier, skipped")
        return
    if run.budget_s:
        _train_to_budget(run, clock, threads, ckpt_every)
    for k, epochs in enumerate(run.stages):
        tj, ej = run.directory / f"train-{k}.json", run.directory / f"eval-{k}.json"
        if ej.exists():
            continue
        if not tj.exists():
            clock.log(f"{run.name}: training stage {k + 1}/{len(run.stages)} to {epochs:g} epochs")
            t = _train(run, epochs, threads, ckpt_every)
            if t is None:
                clock.log(f"{run.name}: diverged ({run.diverged()['message'][:160]})")
                return
            shutil.copy2(run.directory / "checkpoint.pt", run.directory / f"stage-{k}.pt")
            write_json(tj, {**t, "epochs": epochs, "train_seconds": train_seconds(run.directory)})
        clock.log(f"{run.name}: evaluating stage {k + 1}/{len(run.stages)}")
        write_json(ej, _evaluate(run, run.directory / f"stage-{k}.pt", threads))
    r = run.result()
    clock.log(f"{run.name}: finished, test MSE {r['mse']:.4f}, latent OT cost {r['latent_ot_cost']:.3f}"
              + (f", FID-C {r['fid_c']:.2f}" if "fid_c" in r else ""))


def execute_all(runs, write, clock: Clock, threads: int = 1, ckpt_every: int = 50) -> None:
    """`execute` every run in turn; `write(complete)` rewrites the report before, between and after."""
    write(False)
    for run in runs:
        execute(run, clock, threads, ckpt_every)
        write(False)
    write(True)


def _train_to_budget(run: Run, clock: Clock, threads: int, ckpt_every: int, max_rounds: int = 12) -> None:
    """Resume with a growing --epochs until the iterations have used run.budget_s seconds.

    The first chunk is the config's epochs; after each chunk the speed so far (seconds per
    epoch, from metrics.jsonl) sets the next target; the stage list then holds the one final
    epoch count.
    """
    tj = run.directory / "train-0.json"
    if tj.exists():
        run.stages = [read_json(tj)["epochs"]]
        return
    epochs = 0.0
    for _ in range(max_rounds):
        recs = metrics(run.directory)
        used = sum(r["seconds"] for r in recs)
        done = recs[-1]["epoch"] if recs else 0.0
        if used >= run.budget_s * 0.98:
            break
        target = run.train.epochs if not recs else done + (run.budget_s - used) * done / used
        if recs and target - done < 0.5 / (recs[-1]["iteration"] / done):  # less than half an iteration left
            break
        epochs = round(max(target, done), 4)
        clock.log(f"{run.name}: {used:.0f} s of {run.budget_s:.0f} s used, training on to {epochs:g} epochs")
        if _train(run, epochs, threads, ckpt_every) is None:
            clock.log(f"{run.name}: diverged ({run.diverged()['message'][:160]})")
            return
    recs = metrics(run.directory)
    run.stages = [round(recs[-1]["epoch"], 4)] if recs else [run.train.epochs]
    shutil.copy2(run.directory / "checkpoint.pt", run.directory / "stage-0.pt")
    write_json(tj, {"epochs": run.stages[0], "iterations": recs[-1]["iteration"] if recs else 0,
                     "train_seconds": train_seconds(run.directory), "budget_s": run.budget_s})


# ---- data and the FID-C classifier ----------------------------------------------------------------

def data_available(name: str, clock: Clock) -> str:
    """'' when `python -m lvm fetch NAME` finds the data on this machine, else its error message."""
    rc, out, err = lvm(["fetch", name])
    if rc == 0:
        clock.log(out.strip())
        return ""
    return " ".join(ln.strip() for ln in err.splitlines() if ln.strip() and "Traceback" not in ln)[-600:]


def classifier(runs: Path, data: str, epochs: int, clock: Clock, threads: int = 1) -> tuple[Path, dict]:
    """The FID-C feature classifier for `data` at RUNS/fidc-DATA.pt, trained by the CLI when missing."""
    path, info = runs / f"fidc-{data}.pt", runs / f"fidc-{data}.json"
    if not (path.exists() and info.exists()):
        clock.log(f"training the FID-C classifier on {data} ({epochs} epochs) into {_rel(path)}")
        args = ["classifier", "--data", data, "--epochs", str(epochs), "--out", str(path), "--json",
                "--threads", str(threads)]
        rc, out, err = lvm(args)
        if rc != 0:
            raise CLIError(f"classifier exited with {rc}:\n{err[-2000:]}")
        write_json(info, {**_json_out(out), "epochs": epochs, "command": "python -m lvm " + shlex.join(args)})
    return path, read_json(info)
