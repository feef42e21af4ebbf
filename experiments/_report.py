"""The markdown reports of the experiments: how each was made (machine, command, configs), its tables."""
from __future__ import annotations

import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from lvm.config import TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """CPU model, core count, Python and torch versions, git commit (read-only)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch
        tv = torch.__version__
    except ImportError:
        tv = "?"
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        rev = f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "?"
    except (OSError, subprocess.SubprocessError):
        rev = "?"
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, torch {tv}, git {rev}")


def script_command() -> str:
    """How this script was started: ``python -m experiments.NAME ARGS`` (as it runs, from the repository root)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is not None and spec.name:
        return "python -m " + shlex.join([spec.name.removesuffix(".__main__"), *sys.argv[1:]])
    argv = list(sys.argv)
    try:
        argv[0] = str(Path(argv[0]).resolve().relative_to(ROOT))
    except ValueError:
        pass
    return "python " + shlex.join(argv)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def config_diff(cfg: TrainConfig, base: TrainConfig | None = None) -> str:
    """The settings of `cfg` that differ from `base` (default: TrainConfig()), as ``key=value`` pairs."""
    have, ref = _flat(json.loads(json.dumps(asdict(cfg)))), _flat(json.loads(json.dumps(asdict(base or TrainConfig()))))
    return " ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in have.items() if ref.get(k) != v) or "(defaults)"


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}" if abs(x) >= 10 ** -digits or x == 0 else f"{x:.2e}"


def mean_std(xs: list[float], digits: int = 3) -> str:
    """Mean ± sample std (n=...) over runs, never a best run."""
    if not xs:
        return "not run yet"
    if len(xs) == 1:
        return f"{xs[0]:.{digits}f} (n=1)"
    return f"{statistics.mean(xs):.{digits}f} ± {statistics.stdev(xs):.{digits}f} (n={len(xs)})"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def write_report(path: Path, title: str, clock, setup: list[str], body: str, dirs: list[Path],
                 complete: bool) -> None:
    """The markdown file: title, how it was made, the table(s), then every command of every run.

    `clock` is the script's `_common.Clock` (its start time and elapsed wall time go in the header).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    state = "complete" if complete else "PARTIAL (the script is still running or was stopped; rerun to go on)"
    head = [f"# {title}", "",
            f"Made by `{script_command()}` ({state}).", "",
            f"- machine: {machine()}",
            f"- started {clock.started}, wall time of this invocation {clock.elapsed() / 60:.1f} min "
            "(runs finished by earlier invocations are only read)",
            *[f"- {s}" for s in setup], ""]
    cmds = ["", "## Commands", "", "Every CLI call of every run, in order (from each run's `commands.txt`), "
            "after the settings of its `run.json` that differ from `TrainConfig()`'s defaults.", ""]
    for d in dirs:
        c = (d / "commands.txt").read_text().splitlines() if (d / "commands.txt").exists() else []
        if c:
            cfg = f"run.json: `{config_diff(load_config(d / 'run.json'))}`" if (d / "run.json").exists() else ""
            cmds += [f"**{d.parent.name}/{d.name}**", "", *([cfg, ""] if cfg else []), "```", *c, "```", ""]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(head) + "\n" + body.rstrip() + "\n" + "\n".join(cmds))
    os.replace(tmp, path)
