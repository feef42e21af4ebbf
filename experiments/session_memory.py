"""Memory of one live training session over time: is its history bounded, as the app needs for an hour?

Runs the app's demo session (`ui.demo_config()`'s settings: MNIST 0 and 1, d = 2, fast OT solver) in its
own thread, as a browser tab does, and samples the process's resident memory, the frames and records
it keeps. Usage:

    python experiments/session_memory.py [--minutes 60] [--every 30] [--out results/session_memory.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing lvm

from lvm.config import DataConfig, LangevinConfig, ModelConfig, OTConfig, TrainConfig
from lvm.session import MAX_FRAMES, MAX_RECORDS, Session

DEMO = TrainConfig(method="ours", alpha=0.5, ot_every=4, checkpoint_every=0, epochs=1e6,
                   data=DataConfig("mnist", (0, 1), limit=3000), model=ModelConfig(2, "mlp"),
                   langevin=LangevinConfig(), ot=OTConfig("fast"))


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
    ap.add_argument("--out", default="results/session_memory.md")
    a = ap.parse_args()
    head = (f"# Memory of one live training session\n\n{platform.machine()}, {os.cpu_count()} CPUs, torch "
            f"{torch.__version__}; the app's demo settings (MNIST 0 and 1, 3,000 images, d = 2, fast OT, L = 4), "
            f"one training thread with one torch thread, no browser, seed 0. Command: `python "
            f"experiments/session_memory.py --minutes {a.minutes:g} --every {a.every:g}`. History bounds: "
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
