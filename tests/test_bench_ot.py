"""`python -m lvm bench ot` end to end on a tiny problem: real child processes, the table it writes."""
from __future__ import annotations

from pathlib import Path

import pytest

from lvm.ot.bench import run


@pytest.mark.slow
def test_bench_writes_the_sgemm_reference_and_the_solvers_against_it(tmp_path: Path) -> None:
    out = tmp_path / "ot.md"
    run([300], [8], 1, out, paper_passes=5, budget=0, sources=("squashed",), solvers=("sgemm", "fast", "warm"))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.read_text().splitlines()
            if line.startswith("| 300 ")]
    by_solver = {r[3]: r for r in rows}
    assert set(by_solver) == {"sgemm", "fast", "fast warm x3"}
    sgemm, cold, warm = by_solver["sgemm"], by_solver["fast"], by_solver["fast warm x3"]
    assert sgemm[9] != "" and sgemm[10] == ""         # its GFLOP/s (its seconds may print as 0.00), no ratio
    for r in (cold, warm):
        assert r[7] == "0.0%" and float(r[6]) <= 1e-4   # a full permutation within tol of scipy's optimum
        assert float(r[10]) > 0 and r[9] != ""          # x sgemm (from the unrounded seconds) and a GFLOP/s
    assert float(warm[8]) < float(cold[8])                                 # warm starts score fewer rows
