"""scripts/gpu_check.py's CPU part, as CI runs it: every section is reported, and a CPU-only machine says so."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_its_cpu_part_and_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    p = subprocess.run([sys.executable, "-m", "scripts.gpu_check", "--out", str(out), "--quick", "--session-seconds",
                        "3"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    text = out.read_text()
    for section in ("## CUDA tests", "## Langevin", "## The certified auction", "## Anomaly training and scoring",
                    "## The app's session thread"):
        assert section in text
    assert "exit 0" in text and "AUPRC 0." in text and " it/s)" in text
    assert ("No CUDA device on this machine" in text) == (not torch.cuda.is_available())
