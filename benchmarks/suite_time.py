"""Where the test suite's time goes: seconds per lane (fast, slow, browser, distributed) from one run's JUnit XML.

    PYTEST_ADDOPTS="--junitxml=/tmp/suite.xml" bash .ci/run      # or any pytest run of the suite
    python -m benchmarks.suite_time /tmp/suite.xml [--budget 1200]

A test's lane is read from its markers (pytest --collect-only -m ...); a test with several markers (a slow
browser test) counts in each of them, so the rows of the marked lanes may overlap; the fast lane is the README's
`-m "not slow and not browser and not distributed"`. Shares are of the run's summed test time and of CI's
budget (20 minutes for the whole of `.ci/run`, installation included).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANES = {"fast": "not slow and not browser and not distributed", "slow": "slow", "browser": "browser",
         "distributed": "distributed"}


def durations(junit: Path) -> dict[str, float]:
    """{pytest node id: seconds} of every test case in a JUnit XML file."""
    out = {}
    for case in ET.parse(junit).iter("testcase"):
        module, name = case.get("classname", ""), case.get("name", "")
        parts = module.split(".")
        # "tests.test_x" or "tests.test_x.TestClass": the module is the dotted prefix that names a file
        k = next((i for i in range(len(parts), 0, -1) if (ROOT / Path(*parts[:i])).with_suffix(".py").exists()),
                 len(parts))
        node = str(Path(*parts[:k]).with_suffix(".py")) + "::" + "::".join(parts[k:] + [name])
        out[node] = float(case.get("time", 0.0))
    return out


def collected(marker: str) -> set[str]:
    """Node ids pytest collects with `-m marker`."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", marker], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTEST_ADDOPTS": ""})
    return {ln.strip() for ln in proc.stdout.splitlines() if "::" in ln}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("junit", type=Path)
    p.add_argument("--budget", type=float, default=1200.0, help="CI's budget in seconds")
    a = p.parse_args()
    times = durations(a.junit)
    total = sum(times.values())
    print(f"{len(times)} tests, {total:.0f} s of test time in {a.junit}\n")
    print("| lane | tests | seconds | share of test time | share of CI's budget |")
    print("|---|---|---|---|---|")
    for lane, marker in LANES.items():
        ids = collected(marker) & times.keys()
        s = sum(times[i] for i in ids)
        print(f"| {lane} | {len(ids)} | {s:.0f} | {s / total:.0%} | {s / a.budget:.0%} |")
    unmatched = times.keys() - set().union(*(collected(m) for m in LANES.values()))
    if unmatched:
        print(f"\n{len(unmatched)} test ids of the XML not collected now (renamed or skipped?): "
              + ", ".join(sorted(unmatched)[:5]))


if __name__ == "__main__":
    main()
