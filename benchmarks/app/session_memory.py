"""Memory of one live training session over time: is its history bounded, as the app needs for an hour?

Runs the app's demo session (`lvm.presets.DEMO`: MNIST 0 and 1, d = 2, fast OT solver) in its own
thread, as a browser tab does, and samples the process's resident memory, the frames and records it
keeps. Usage:

    python -m benchmarks.app.session_memory [--minutes 60] [--every 30] [--out benchmarks/app/session_memory.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from lvm.presets import DEMO

from lvm.live.session import MAX_FRAMES, MAX_RECORDS, Session


def rss_mb() -> float:
    """Resident set size of this process, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--out", default="benchmarks/app/session_memory.md")
    a = ap.parse_args()
    d = DEMO.data
    head = (f"# Memory of one live training session\n\n{platform.machine()}, {os.cpu_count()} CPUs, torch "
            f"{torch.__version__}; the app's demo settings, lvm.presets.DEMO ({d.name} digits "
            f"{','.join(map(str, d.classes))}, {d.limit:,} images, d = {DEMO.model.latent_dim}, {DEMO.ot.solver} OT, "
            f"alpha {DEMO.alpha}, L = {DEMO.ot_every}, K = {DEMO.langevin.steps}), one training thread with one "
            f"torch thread, no browser, seed {DEMO.seed}. Command: `python -m benchmarks.app.session_memory "
            f"--minutes {a.minutes:g} --every {a.every:g}`. History bounds: "
            f"{MAX_FRAMES} frames, {MAX_RECORDS:,} records.\n\n"
            "| wall s | iterations | frames kept | records kept | RSS MB |\n|---|---|---|---|---|\n")
    print(head, end="", flush=True)
    s = Session(DEMO)
    rows, t0 = [], time.monotonic()
    s.start()
    try:
        while True:
            v = s.view()
            row = (f"| {time.monotonic() - t0:.0f} | {v.iteration:,} | {len(v.frames)} | {len(v.records):,} | "
                   f"{rss_mb():,.0f} |")
            print(row, flush=True)
            rows.append(row)
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(head + "\n".join(rows) + "\n")
            if time.monotonic() - t0 >= a.minutes * 60 or v.state != "running":
                break
            time.sleep(a.every)
    finally:
        s.stop()


if __name__ == "__main__":
    main()
