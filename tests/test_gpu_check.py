"""scripts/gpu_check.py's CPU part, as CI runs it: every section is reported with real figures, and a CPU-only
machine says so."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("## CUDA tests", "## Langevin", "## The certified auction", "## Anomaly training and scoring",
            "## The app's session thread")


def _sections(text: str) -> dict[str, str]:
    """Each '## ' heading of the report with the text under it."""
    parts = re.split(r"^(## .*)$", text, flags=re.M)
    return {head.split(" (")[0]: body for head, body in zip(parts[1::2], parts[2::2])}


def check_report(text: str, n_test: int) -> None:
    """Each section of a CPU report says what its part did: the CUDA tests ran or skipped with exit 0, a rate per
    generator, a certified gap, the anomaly command's exit 0 and AUPRC on n_test images, iterations of the thread."""
    got = _sections(text)
    assert list(got) == [s.split(" (")[0] for s in SECTIONS]
    cuda = got["## CUDA tests"]
    assert "exit 0," in cuda and re.search(r"\d+ (passed|skipped)", cuda), cuda  # the CUDA tests ran (or skipped)
    rates = [float(r.split("|")[-2].replace(",", "")) for r in got["## Langevin"].splitlines()
             if r.startswith(("| mlp", "| conv"))]
    assert len(rates) == 3 and all(r > 0 for r in rates)  # image-steps/s of mlp d = 2, conv d = 16 and conv d = 64
    row = next(r for r in got["## The certified auction"].splitlines() if r.startswith("| 4,000 |"))
    assert float(row.strip("| ").split("|")[-1]) <= 1e-3  # the certified relative gap of the warm solve
    anomaly = got["## Anomaly training and scoring"]
    m = re.search(r"exit (\d+), .* AUPRC ([0-9.na]+) on (\d+) test images", anomaly)
    assert m and m[1] == "0" and int(m[3]) == n_test and math.isfinite(float(m[2])), anomaly
    m = re.search(r"on (\w+): (\d+) iterations in ([0-9.]+) s .*\(([0-9.]+) it/s\), state running",
                  got["## The app's session thread"])
    assert m and int(m[2]) >= 1 and float(m[4]) > 0, got["## The app's session thread"]  # it trained


def test_the_checks_read_the_shipped_cpu_report_and_catch_a_failed_part() -> None:
    text = (ROOT / "benchmarks" / "gpu-check-cpu-only.md").read_text()
    check_report(text, 2000)
    for part, broken in (("exit 0, 9 s", "exit 4, 9 s"), ("27 iterations", "0 iterations"),
                         ("| 6.6e-05 |", "| 2.1e-02 |")):
        with pytest.raises(AssertionError):
            check_report(text.replace(part, broken), 2000)


@pytest.mark.slow
def test_the_gpu_check_runs_its_cpu_part_and_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    p = subprocess.run([sys.executable, "-m", "scripts.gpu_check", "--out", str(out), "--quick", "--session-seconds",
                        "3"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    text = out.read_text()
    check_report(text, 300)
    assert ("No CUDA device on this machine" in text) == (not torch.cuda.is_available())
