"""Issue 28, step 4: the teaching demo over a lecture-length run, ours and ABP from the same Start.

    python -m experiments.lecture_run --browser [--seconds 120] [--every 15] [--n 1000]
    python -m experiments.lecture_run [--set alpha=0.5 --set ot_every=4 ...] [--label NAME]

With --browser the app itself trains: `streamlit run app.py` with Chromium on the Train view, Start clicked as a
teacher would, and the run's file (`lvm.live.store`, written every `--every` seconds here) copied each time it
is written. Without it, the app's own session threads (`lvm.live.session.Session`: ours, and ABP keeping pace
beside it, as `ui.registry` makes them) train in this process with no browser, from the demo config with
`--set` overrides (a candidate setting), and a copy of each generator is taken every `--every` seconds.

After the run, each copy is measured the same way: K Langevin steps from fresh noise (the run's own K, s, sigma)
on n fixed training images, the debiased W2^2 of those z^K to the prior (`lvm.metrics.q_fit`, seed 0), beside
the band edge under which two prior samples of n fall (`lvm.distance.prior_band`). Each invocation keeps its
rows in RUNS/lecture_run/LABEL.json; the report (OUT) is rebuilt from all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from lvm.config import TrainConfig
from lvm.data import load
from lvm.distance import prior_band
from lvm.live import store
from lvm.live.session import Session
from lvm.metrics import q_fit
from lvm.models import build_generator
from lvm.presets import DEMO

from ._report import machine

ROOT = Path(__file__).resolve().parents[1]


def with_settings(cfg: TrainConfig, sets: list[str]) -> TrainConfig:
    """`cfg` with NAME=VALUE overrides of its top-level, langevin or model fields (alpha, ot_every, lr, steps,
    step_size, sigma, width, ...), each parsed as a number."""
    for item in sets:
        key, _, value = item.partition("=")
        num = float(value) if "." in value or "e" in value else int(value)
        if hasattr(cfg.langevin, key):
            cfg = replace(cfg, langevin=replace(cfg.langevin, **{key: num}))
        elif hasattr(cfg.model, key):
            cfg = replace(cfg, model=replace(cfg.model, **{key: num}))
        elif hasattr(cfg, key):
            cfg = replace(cfg, **{key: num})
        else:
            raise SystemExit(f"--set {item}: no field {key!r} in the config or its langevin or model part")
    return cfg


def headless(cfg: TrainConfig, seconds: float, every: float, cpu: bool = False) -> list[dict]:
    """The app's two session threads without a browser: [{"t": s, "cpu": s, name: (cfg, generator, iteration)}].
    `seconds` and `every` count wall-clock time, or with `cpu` this process's CPU time (both threads), which a
    crowded machine does not stretch: candidates compared on a shared machine are compared at equal work."""
    clock = time.process_time if cpu else time.monotonic
    ours = Session(cfg)
    abp = Session(replace(cfg, method="abp", alpha=None))
    abp.keep_pace(ours)
    snaps, t0, c0 = [], time.monotonic(), time.process_time()
    start = clock()
    ours.start(), abp.start()
    for k in range(1, int(seconds // every) + 1):
        while clock() < start + k * every:
            time.sleep(0.05)
        t, c = time.monotonic() - t0, time.process_time() - c0
        snaps.append({"t": t, "cpu": c, **{name: s.model() for name, s in (("ours", ours), ("abp", abp))}})
        print(f"{t:6.1f} s ({c:.1f} CPU s): ours iteration {snaps[-1]['ours'][2]}, ABP {snaps[-1]['abp'][2]}",
              flush=True)
    for s in (ours, abp):
        s.stop()
    return snaps


def in_browser(seconds: float, every: float) -> list[dict]:
    """The app with Chromium on Train, Start clicked; the run's file copied each time it is written."""
    from playwright.sync_api import sync_playwright

    from benchmarks.app.server import streamlit_server
    from benchmarks.app.explorer_budget import ARGS, CHROMIUM
    runs = Path(tempfile.mkdtemp(prefix="lecture-run-"))
    env = {store.DIR_ENV: str(runs), store.EVERY_ENV: str(every)}
    copies: list[tuple[float, Path]] = []
    with streamlit_server(env) as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/train")
        page.get_by_role("button", name="Start").click(timeout=180_000)
        t0, seen = time.monotonic(), 0.0
        while (t := time.monotonic() - t0) < seconds + every / 2:
            files = list(runs.glob("*.pt"))
            if files and (m := files[0].stat().st_mtime) != seen:
                seen = m
                (keep := runs / f"copy-{len(copies)}").mkdir()
                copies.append((t, Path(shutil.copy(files[0], keep))))
                print(f"{t:6.1f} s: run file written", flush=True)
            page.wait_for_timeout(250)
        browser.close()
    snaps = []
    for t, path in copies:
        sessions, _ = store.load(path.stem, root=path.parent)
        row = {"t": t}
        for name, key in (("ours", "main"), ("abp", "abp")):
            if (s := sessions.get(key)) is not None:
                state, run_cfg = s["trainer"], s["cfg"]
                gen = build_generator(run_cfg.model)
                gen.load_state_dict(state["model"])
                row[name] = (run_cfg, gen.eval(), int(state["iteration"]))
        snaps.append(row)
    shutil.rmtree(runs, ignore_errors=True)
    return snaps


def measure(snaps: list[dict], n: int) -> list[dict]:
    """Each copy's q(z^K) W2^2 to the prior on n fixed training images of its config."""
    rows, data = [], {}
    for s in snaps:
        row = {"t": round(s["t"], 1), "cpu": round(s.get("cpu", float("nan")), 1)}
        for name in ("ours", "abp"):
            if name not in s:
                continue
            cfg, gen, it = s[name]
            key = json.dumps(cfg.data.__dict__, default=list, sort_keys=True)
            if key not in data:
                x = load(cfg.data, "train").x
                data[key] = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]]
            fit = q_fit(gen, data[key], cfg.langevin, seed=0)
            row[name] = {"iteration": it, "w2sq": fit.w2sq, "mse": fit.mse, "prior_mse": fit.prior_mse}
        rows.append(row)
        print(f"{row['t']:6.1f} s: " + ", ".join(f"{k} it {v['iteration']} W2^2 {v['w2sq']:.3f}"
                                                 for k, v in row.items() if k in ("ours", "abp")), flush=True)
    return rows


def report(runs: Path, out: Path, n: int) -> None:
    band = prior_band(n, DEMO.model.latent_dim)
    lines = ["# The teaching demo over a lecture-length run (issue 28)", "",
             "`python -m experiments.lecture_run` (module docstring). Each row: seconds since Start, the iteration "
             f"reached and the debiased W2^2 of the model's own q(z^K) to the prior (K Langevin steps from fresh "
             f"noise on n = {n} fixed training images, seed 0; squared latent units). Two prior samples of "
             f"n = {n} read {band.mean:+.3f} ± {band.sd:.3f}; the band edge (on the prior) is {band.upper:.3f}.", ""]
    runs_read = [json.loads(f.read_text()) for f in sorted(runs.glob("*.json"))]
    lines += ["## Summary", "", "Each run's last copy, and its lowest ours W2^2 on the way (the per-copy tables "
              "below). Runs on the CPU clock are compared at equal work whatever the machine's load.", "",
              "| run | clock | s at the end | ours iteration | ours W2^2 | ours lowest W2^2 | ours MSE | "
              "ABP W2^2 |", "|---|---|---|---|---|---|---|---|"]
    for r in runs_read:
        last = r["rows"][-1]
        o, a = last.get("ours", {}), last.get("abp", {})
        low = min(row["ours"]["w2sq"] for row in r["rows"] if "ours" in row)
        cpu = "cpu" in last and last["cpu"] == last["cpu"] and "CPU clock" in r["label"]
        lines.append(f"| {r['label']} | {'CPU' if cpu else 'wall'} | {last['cpu'] if cpu else last['t']:.0f} | "
                     f"{o.get('iteration', '–')} | {o.get('w2sq', float('nan')):.3f} | {low:.3f} | "
                     f"{o.get('mse', float('nan')):.4f} | {a.get('w2sq', float('nan')):.3f} |")
    lines.append("")
    for r in runs_read:
        lines += [f"## {r['label']}", "", f"{r['how']}; settings: {r['settings']}. {r['machine']}; load average "
                  f"{r['load'][0]:.2f} at Start, {r['load'][1]:.2f} at the end.", "",
                  "| s since Start | CPU s | ours iteration | ours W2^2 | ours MSE | ABP iteration | ABP W2^2 "
                  "| ABP MSE |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in r["rows"]:
            o, a = row.get("ours", {}), row.get("abp", {})
            cell = lambda d, k, f: format(d[k], f) if k in d and d[k] == d[k] else "–"  # noqa: E731 (nan: none)
            lines.append(f"| {row['t']:.0f} | {cell(row, 'cpu', '.0f')} | {cell(o, 'iteration', 'd')} | "
                         f"{cell(o, 'w2sq', '.3f')} | "
                         f"{cell(o, 'mse', '.4f')} | {cell(a, 'iteration', 'd')} | {cell(a, 'w2sq', '.3f')} | "
                         f"{cell(a, 'mse', '.4f')} |")
        lines.append("")
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--browser", action="store_true", help="train in the app with Chromium on the Train view")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a candidate setting (headless)")
    p.add_argument("--label", help="the rows' name in the report (default: from the settings)")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--every", type=float, default=15.0)
    p.add_argument("--cpu", action="store_true", help="headless: --seconds and --every in CPU seconds of both threads")
    p.add_argument("--n", type=int, default=1000, help="training images of each q(z^K) measurement")
    p.add_argument("--runs", default=str(ROOT / "runs" / "lecture_run"))
    p.add_argument("--out", default=str(ROOT / "results" / "lecture_run.md"))
    a = p.parse_args()
    if a.browser and (a.set or a.cpu):
        raise SystemExit("--set and --cpu apply to headless runs; the app starts from the demo config")
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cfg = with_settings(replace(DEMO, checkpoint_every=0), a.set)
    sigma = "" if any(x.startswith("sigma=") for x in a.set) else f"sigma={cfg.langevin.sigma:g}"
    label = a.label or ("app with a browser, the demo's settings, " + sigma if a.browser else
                        "headless" + (" (CPU clock)" if a.cpu else "") + ", " + ", ".join(a.set + [sigma]).strip(", "))
    load_start = os.getloadavg()[0]
    snaps = in_browser(a.seconds, a.every) if a.browser else headless(cfg, a.seconds, a.every, a.cpu)
    load_end = os.getloadavg()[0]
    rows = measure(snaps, a.n)
    runs = Path(a.runs)
    runs.mkdir(parents=True, exist_ok=True)
    how = ("the app (streamlit run app.py), Chromium on Train, Start clicked" if a.browser else
           "the app's session threads (ours, ABP keeping pace), no browser"
           + (f", a copy every {a.every:g} CPU seconds of this process" if a.cpu else ""))
    (runs / f"{''.join(c if c.isalnum() else '-' for c in label)}.json").write_text(json.dumps(
        {"label": label, "how": how, "settings": ", ".join(a.set) or "the demo's (lvm.presets.DEMO)",
         "machine": machine(), "load": [load_start, load_end], "rows": rows}, indent=1))
    report(runs, Path(a.out), a.n)


if __name__ == "__main__":
    main()
