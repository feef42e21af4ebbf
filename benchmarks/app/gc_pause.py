"""Full garbage collections in the app's server process: how long each one stops every thread (the page's
and both training runs'), with and without the warm-up's `gc.freeze()` (`warmup.freeze`).

    python -m benchmarks.app.gc_pause [--seconds 60] [--out benchmarks/app/gc_pause.md]

Each mode runs in a process of its own, as a server does: it imports streamlit and the app's modules, runs
the warm-up (`registry.warm_up`: torch, lvm, the demo's data) and, in the "frozen" mode, `warmup.freeze()` after
it; then ours and ABP (kept at ours' pace) train the demo's settings side by side for --seconds, as on the
Train page, while a `gc.callbacks` hook times every full (generation 2) collection. Without a browser the
garbage is only the runs', fewer objects than a server's page redraws make; a collection's time is mostly
its scan of every object tracked, which the table counts.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository (app.py)


def child(frozen: bool, seconds: float) -> dict:
    """One server-like process: warm-up, then both runs train while full collections are timed."""
    import streamlit  # noqa: F401 - what a server holds before the warm-up
    from lvm.live.session import Session
    from lvm.presets import DEMO
    from ui import models, registry, warmup
    from ui.pictures import grids  # noqa: F401 - imported by the server's landing view

    registry.warm_up()
    models.test_images(DEMO.data, 1)
    if frozen:
        warmup.freeze()
    tracked = len(gc.get_objects())
    pauses: list[float] = []
    started: list[float] = []

    def hook(phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started.append(time.perf_counter())
        else:
            pauses.append(time.perf_counter() - started.pop())

    ours = Session(DEMO)
    abp = Session(registry.abp_config(DEMO))
    abp.keep_pace(ours)
    gc.callbacks.append(hook)
    ours.start()
    abp.start()
    time.sleep(seconds)
    gc.callbacks.remove(hook)
    iterations = ours.view().iteration
    ours.stop()
    abp.stop()
    forced = []
    for _ in range(3):  # the scan alone: what a full collection costs whatever garbage there is
        t0 = time.perf_counter()
        gc.collect()
        forced.append(time.perf_counter() - t0)
    return {"tracked": tracked, "frozen": gc.get_freeze_count(), "pauses": pauses, "forced": forced,
            "iterations": iterations, "seconds": seconds}


def report(results: dict[str, dict]) -> str:
    load = os.getloadavg()
    lines = ["# Full garbage collections in the app's server process (`python -m benchmarks.app.gc_pause`)", "",
             f"{os.cpu_count()} CPUs, load average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; "
             "one process per mode: the server's imports and warm-up, then ours and ABP training the demo's "
             "settings side by side. A full collection stops every thread of the process while it runs.", "",
             "| mode | objects tracked after the warm-up | frozen | full collections while training | every (s) | "
             "median (s) | longest (s) | a forced full collection after it, median of 3 (s) | ours' iterations |",
             "|---|---|---|---|---|---|---|---|---|"]
    for mode, r in results.items():
        p = r["pauses"]
        every = f"{r['seconds'] / len(p):.0f}" if p else "-"
        med, top = (f"{statistics.median(p):.3f}", f"{max(p):.3f}") if p else ("-", "-")
        lines.append(f"| {mode} | {r['tracked']:,} | {r['frozen']:,} | {len(p)} | {every} | {med} | {top} | "
                     f"{statistics.median(r['forced']):.3f} | {r['iterations']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="training time per mode")
    p.add_argument("--out", default="benchmarks/app/gc_pause.md")
    p.add_argument("--child", choices=("plain", "frozen"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child == "frozen", a.seconds)))
        return
    results = {}
    for mode in ("plain", "frozen"):
        print(f"{mode}: warm-up, then {a.seconds:g} s of training ...", flush=True)
        out = subprocess.run([sys.executable, "-m", "benchmarks.app.gc_pause", "--child", mode, "--seconds",
                              str(a.seconds)], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             capture_output=True, text=True, check=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    text = report(results)
    print(text)
    Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
