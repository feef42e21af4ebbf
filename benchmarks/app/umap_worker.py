"""How long the UMAP worker (ui.projection.Worker) takes on this machine: its fit, its first transform and a
later one, for N latents in d dimensions (a Gaussian with decaying scales, like a trained run's latents).

    python -m benchmarks.app.umap_worker [--n 1000] [--d 16]

The server never waits for these: the views show PCA until the fit and the newest placed points after it.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=16)
    a = ap.parse_args()
    from ui.projection import Worker

    load = os.getloadavg()
    z = (np.random.RandomState(0).standard_normal((a.n, a.d)) * np.linspace(2, 0.2, a.d)).astype(np.float32)
    t0 = time.monotonic()
    w = Worker("umap", z)
    while not w.ready():
        time.sleep(0.05)
    fit = time.monotonic() - t0
    assert w.error is None, w.error
    times = []
    for version in (1, 2):
        t0 = time.monotonic()
        while (got := w.latest(version, {"z": z + 0.01 * version})) is None or got[0] != version:
            time.sleep(0.05)
        times.append(time.monotonic() - t0)
    w.close()
    print(f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, {os.cpu_count()} CPUs, n = {a.n}, d = {a.d}")
    print("| step | seconds |\n|---|---|")
    print(f"| fit (fresh worker: imports umap, compiles) | {fit:.1f} |")
    print(f"| first transform of {a.n} new points | {times[0]:.1f} |")
    print(f"| next transform | {times[1]:.1f} |")


if __name__ == "__main__":
    main()
