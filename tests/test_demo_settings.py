"""python -m experiments.demo_settings --quick end to end: real ours and ABP runs, then its tables."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lvm.config import DataConfig
from lvm.data import load

ROOT = Path(__file__).resolve().parents[1]


def _rows(text: str, section: str) -> list[list[str]]:
    """The body rows of the first table after the heading `section`, as lists of cells."""
    lines = text.split(section, 1)[1].splitlines()
    end = next((i for i, ln in enumerate(lines) if i and ln.startswith("#")), len(lines))
    table = [ln for ln in lines[:end] if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in table[2:]]


@pytest.mark.slow
def test_quick_writes_tables_of_real_numbers(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "experiments.demo_settings", "--quick", "--out", str(tmp_path), "--runs",
           str(tmp_path / "runs")]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (tmp_path / "demo_settings.md").read_text()
    assert "python -m experiments.demo_settings --quick" in text and "## Chosen: " in text
    stage1 = _rows(text, "## Stage 1")
    x = load(DataConfig("mnist", (0, 1), limit=2000), "train").x
    untrained = float(((x - 0.5) ** 2).mean())  # the batch MSE of a generator that draws 0.5 (sigmoid(0)) everywhere
    assert len(stage1) == 2 and sum("(chosen)" in r[0] for r in stage1 + _rows(text, "## Stage 2")) == 1
    for r in stage1:
        chains_first = float(r[6].split(" / ")[0])  # before / after the first correction
        ours_q, abp_q, ratio = (float(r[i]) for i in (9, 10, 11))
        assert chains_first > 0 and ours_q > 0 and abp_q > 0
        assert abs(ratio - ours_q / abp_q) < 0.02
        assert float(r[14]) < 0.9 * untrained and float(r[15]) < 0.9 * untrained and float(r[16]) > 0  # MSE, it/s
    trajectory = _rows(text, "## Trajectory")
    assert [int(r[0]) for r in trajectory] == sorted(int(r[0]) for r in trajectory) and len(trajectory) >= 2
    assert all(float(c) > 0 for r in trajectory for c in r[1:])
