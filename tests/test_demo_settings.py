"""python -m experiments.demo_settings --quick end to end: real ours and ABP runs, then its tables."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rows(text: str, section: str) -> list[list[str]]:
    """The body rows of the first table after the heading `section`, as lists of cells."""
    lines = text.split(section, 1)[1].splitlines()
    end = next((i for i, ln in enumerate(lines) if i and ln.startswith("#")), len(lines))
    table = [ln for ln in lines[:end] if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in table[2:]]


def test_quick_writes_tables_of_real_numbers(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "experiments.demo_settings", "--quick", "--out", str(tmp_path), "--runs",
           str(tmp_path / "runs")]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (tmp_path / "demo_settings.md").read_text()
    assert "python -m experiments.demo_settings --quick" in text and "## Chosen: " in text
    stage1 = _rows(text, "## Stage 1")
    assert len(stage1) == 2 and sum("(chosen)" in r[0] for r in stage1 + _rows(text, "## Stage 2")) == 1
    for r in stage1:
        chains_first = float(r[6].split(" / ")[0])  # before / after the first correction
        ours_q, abp_q, ratio = (float(r[i]) for i in (9, 10, 11))
        assert chains_first > 0 and ours_q > 0 and abp_q > 0
        assert abs(ratio - ours_q / abp_q) < 0.02
        assert 0 < float(r[14]) < 1 and float(r[16]) > 0  # MSE in [0, 1] pixels, iterations/s
    trajectory = _rows(text, "## Trajectory")
    assert [int(r[0]) for r in trajectory] == sorted(int(r[0]) for r in trajectory) and len(trajectory) >= 2
    assert all(float(c) > 0 for r in trajectory for c in r[1:])


def test_demo_speed_compares_every_variant_on_every_seed(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "experiments.demo_speed", "--iterations", "16", "--seeds", "0", "--out",
           str(tmp_path), "--runs", str(tmp_path / "runs")]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (tmp_path / "demo_speed.md").read_text()
    rows = _rows(text, "# The teaching demo")
    assert [r[0].replace(" **(chosen)**", "") for r in rows] == [
        "hidden 256, L = 4 (demo_settings' choice)", "hidden 128, L = 4", "hidden 128, L = 4, alpha 0.5",
        "hidden 128, L = 8", "hidden 128, L = 8, alpha 0.5"]
    for r in rows:
        ours_q, ratio = float(r[2]), float(r[3])  # one seed: one figure per cell
        assert r[1] in ("0 of 1", "1 of 1") and ours_q > 0 and ratio > 0
        assert float(r[4]) > 0 and 0 < float(r[7]) < 1 and 0 < float(r[8]) < 1  # it/s, ours' and ABP's MSE
    chosen = [r for r in rows if "(chosen)" in r[0]]
    assert all(r[1] == "1 of 1" for r in chosen) and len(chosen) <= 1
    assert ("Chosen: **" in text) == bool(chosen)
    assert text.count("## ") == 5  # a trajectory per variant
