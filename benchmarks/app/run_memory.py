"""Memory of one lecture run (ours with ABP beside it, the app's demo) at its history bound, and its file.

Trains the demo's two sessions for --seconds (ABP keeping pace, as on the Train view), then builds a second run
from their export with the records and frames repeated up to the bounds (MAX_RECORDS, MAX_FRAMES: what an
hour-long run keeps at most), and reports the process's resident memory after each step and the run's file size.
The second run's increment is what one more run costs a server (torch, the data cache and the first run's
arrays are already there); per-browser-session pictures come on top (benchmarks/app/lecture_load.py).

    python -m benchmarks.app.run_memory [--seconds 30] [--out benchmarks/app/run_memory.md]
"""
from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from lvm.live import store
from lvm.live.session import MAX_FRAMES, MAX_RECORDS, Session
from lvm.presets import DEMO
from ui.registry import abp_config  # the Train view's ABP beside ours (ui.registry imports Streamlit, not a page)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _filled(e: dict) -> dict:
    """An export with its records and frames repeated up to the bounds, each a copy of its own (new dicts,
    floats and arrays, as a long run's are)."""
    rec, fr = list(e["records"]), list(e["frames"])
    records = tuple({k: v + 0.0 for k, v in rec[i % len(rec)].items()} for i in range(MAX_RECORDS))
    frames = tuple(replace(fr[i % len(fr)], **{k: getattr(fr[i % len(fr)], k).copy() for k in
                                               ("z", "before", "source", "target", "moved")
                                               if getattr(fr[i % len(fr)], k) is not None})
                   for i in range(MAX_FRAMES))
    return {**e, "records": records, "frames": frames}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("run_memory.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    load0, rows = os.getloadavg(), []
    rows.append(("the process, torch imported", rss_mb()))
    main_s = Session(DEMO)
    abp = Session(abp_config(DEMO))
    abp.keep_pace(main_s)
    rows.append(("one run built (ours + ABP, data loaded)", rss_mb()))
    main_s.start(), abp.start()
    time.sleep(args.seconds)
    main_s.pause(), abp.pause()
    time.sleep(1.0)
    v = main_s.view()
    rows.append((f"after {args.seconds:g} s of training ({v.iteration} iterations, {len(v.frames)} frames, "
                 f"{len(v.records)} records)", rss_mb()))
    gc.collect()
    base = rss_mb()  # before the copies: the second run owns them (restore keeps the records it is given)
    filled = {"main": _filled(main_s.export()), "abp": _filled(abp.export())}
    m2, a2 = Session(DEMO), Session(abp_config(DEMO))
    m2.restore(filled["main"]), a2.restore(filled["abp"])
    del filled
    gc.collect()
    at_bound = rss_mb()
    rows.append((f"a second run with its histories at the bounds ({MAX_RECORDS:,} records, {MAX_FRAMES} frames "
                 "each)", at_bound))
    with tempfile.TemporaryDirectory() as d:
        path = store.save("abcdef", {"main": m2.export(), "abp": a2.export()}, root=Path(d))
        t0 = time.perf_counter()
        store.save("abcdef", {"main": m2.export(), "abp": a2.export()}, root=Path(d))
        write_s = time.perf_counter() - t0
        size = path.stat().st_size / 2**20
    for s in (main_s, abp, m2, a2):
        s.stop()
    table = "\n".join(["| step | RSS MB |", "|---|---|"] + [f"| {a} | {b:,.0f} |" for a, b in rows])
    text = (f"# Memory of one lecture run\n\n`python -m benchmarks.app.run_memory --seconds {args.seconds:g}`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, one torch thread, "
            f"load average {load0[0]:.2f} at the start (a machine shared with other work), seed {DEMO.seed}.\n\n"
            f"{table}\n\nOne more run at its history bound: **{at_bound - base:,.0f} MB** "
            f"({at_bound:,.0f} - {base:,.0f}). Its file at the bounds: **{size:.1f} MB**, written in {write_s:.2f} s.\n")
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
