"""The app as a lecture uses it, timed in Debian's Chromium: first picture per view, page switches, and how
long Start, Pause, Step and a slider take to show their effect; then redraws/s and iterations/s of the Train
view while ours and ABP train.

    python -m benchmarks.app.app_latency [--out results] [--watch 30] [--repeats 5]

Starts ``streamlit run app.py`` on a free localhost port (no request leaves the machine) and writes
benchmarks/app/app_latency.md and the Train view's screenshots (app_train_start.png, app_train_first_correction.png,
app_train.png) to --out. Every figure is one run on this machine; the load average at the start is recorded,
and so are the server's full garbage collections from Start on (timed inside it by benchmarks/app/gc_trace).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks.app.server import streamlit_server

ROOT = Path(__file__).resolve().parents[2]  # the repository (app.py)
GC_TRACE = Path(__file__).resolve().parent / "gc_trace"  # its sitecustomize times the server's full collections
CHROMIUM = "/usr/bin/chromium"
VIEWS = ("Train", "Latent & OT", "Reconstruct & generate", "Anomaly", "Home")
HEADING = {"Home": "Short-run MCMC inference with OT correction"}  # the others' heading is their name
PICTURE = "[data-testid=stImage] img"
# a view's first picture, or its note that it has none yet (Latent & OT before two frames); visible: the notes
# in a closed expander do not count
FIRST_PICTURE = f"[data-testid=stMain] :is({PICTURE}, [data-testid=stAlert]):visible"
REPEAT_GAP = 8.0  # seconds of training between a Start again and the next Pause
DEMO_L = 8  # lvm.presets.DEMO.ot_every (not imported: torch would load in this process)


@contextmanager
def app(gc_log: Path | None = None):
    """``streamlit run app.py`` on a free localhost port; its URL. `gc_log`: the server appends the start and
    duration of each of its full garbage collections there (benchmarks/app/gc_trace)."""
    env = {}
    if gc_log is not None:
        env = {"LVM_GC_LOG": str(gc_log),
               "PYTHONPATH": os.pathsep.join([str(GC_TRACE)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    with streamlit_server(env) as (url, _):
        yield url


def _text(page) -> str:
    return page.evaluate("document.body.innerText")


def _until(page, cond, timeout: float = 60.0) -> float:
    """Seconds until cond(page) holds (polling every 20 ms); inf past the timeout."""
    t0 = time.monotonic()
    while not cond(page):
        if time.monotonic() - t0 > timeout:
            return float("inf")
        time.sleep(0.02)
    return time.monotonic() - t0


def _status(page) -> tuple[str, int]:
    m = re.search(r"(ready|training|paused|stopped) · iteration (\d+)", _text(page))
    return (m.group(1), int(m.group(2))) if m else ("", -1)


def _number(page, pattern: str) -> int:
    m = re.search(pattern, _text(page))
    return int(m.group(1)) if m else -1


def switch(page, view: str) -> tuple[float, float]:
    """Seconds from the click on `view`'s link until its heading, and until its first picture."""
    t0 = time.monotonic()
    page.get_by_role("link", name=view).first.click()
    page.get_by_role("heading", name=HEADING.get(view, view)).first.wait_for(timeout=120_000)
    switched = time.monotonic() - t0
    page.wait_for_selector(FIRST_PICTURE, timeout=120_000)
    return switched, time.monotonic() - t0


def _add(out: dict, control: str, seconds: float) -> None:
    out["controls"].setdefault(control, []).append(seconds)


def measure(url: str, watch: float, shots: Path, repeats: int = 1, linger: float = 0.0) -> dict:
    """The timings; screenshots of the Train view at Start, after the first correction and after `watch` s;
    Pause `repeats` times, with Start again and REPEAT_GAP s of training between, then Step `repeats` times;
    `linger` s on Home first."""
    from playwright.sync_api import sync_playwright

    out: dict = {"views": {}, "controls": {}}
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.on("request", lambda r: outside.append(r.url) if r.url.startswith("http")
                and not r.url.startswith(url) else None)
        t0 = time.monotonic()
        page.goto(url)
        page.wait_for_selector(PICTURE, timeout=120_000)
        out["views"]["Home (first load)"] = {"switch": time.monotonic() - t0, "picture": time.monotonic() - t0}
        page.wait_for_timeout(linger * 1000)  # e.g. past the warm-up: Train then shows no waiting view
        for view in VIEWS:
            t0 = time.monotonic()
            switched, picture = switch(page, view)
            out["views"][view] = {"switch": switched, "picture": picture}
            if view == "Train":  # Start, then the rest of the views while it trains
                page.get_by_role("button", name="Start").wait_for(timeout=120_000)  # after the warm-up (warmup.py)
                out["views"][view]["ready"] = time.monotonic() - t0
                page.get_by_role("button", name="Start").click()
                out["training from"] = time.time()
                _add(out, "Start (status says training)", _until(page, lambda pg: _status(pg)[0] == "training"))
                _until(page, lambda pg: _status(pg)[1] >= 1)  # the pictures at Start and after the first correction
                page.screenshot(path=str(shots / "app_train_start.png"), full_page=True)
                _until(page, lambda pg: _status(pg)[1] > DEMO_L)  # the first correction is at iteration L
                page.wait_for_timeout(1200)  # the redraw that shows it
                page.screenshot(path=str(shots / "app_train_first_correction.png"), full_page=True)
        page.get_by_role("link", name="Train").first.click()
        page.get_by_role("heading", name="Train").first.wait_for()
        _until(page, lambda pg: _status(pg)[0] == "training")
        r0, i0, t0 = _number(page, r"redraw (\d+)"), _status(page)[1], time.monotonic()
        time.sleep(watch)
        r1, i1, dt = _number(page, r"redraw (\d+)"), _status(page)[1], time.monotonic() - t0
        out["rates"] = {"redraws/s": (r1 - r0) / dt, "iterations/s (ours, ABP beside)": (i1 - i0) / dt,
                        "seconds": dt}
        page.screenshot(path=str(shots / "app_train.png"), full_page=True)
        for i in range(repeats):  # Pause and Start again while both train: each lands somewhere else in a redraw
            if i:
                page.get_by_role("button", name="Start").click()
                _add(out, "Start again (status says training)", _until(page, lambda pg: _status(pg)[0] == "training"))
                page.wait_for_timeout(REPEAT_GAP * 1000)
            page.get_by_role("button", name="Pause").click()
            _add(out, "Pause (status says paused)", _until(page, lambda pg: _status(pg)[0] == "paused"))
            page.wait_for_timeout(1000)
        for _ in range(repeats):  # every L-th one corrects and measures q(z^K): a longer iteration
            it = _status(page)[1]
            page.get_by_role("button", name="Step").click()
            _add(out, "Step (iteration + 1 shown)", _until(page, lambda pg: _status(pg)[1] > it))
            page.wait_for_timeout(1000)
        slider = page.get_by_role("slider").nth(1)  # K: an <input type=range>; its value shows in the thumb label
        shown = page.locator("[data-testid=stSliderThumbValue]").nth(1)
        page.wait_for_timeout(1500)  # the Step's rerun done
        before = shown.inner_text()
        slider.focus()
        page.keyboard.press("ArrowRight")
        shown_after = _until(page, lambda pg: shown.inner_text() != before)
        _add(out, "K slider (value shown)", shown_after)
        _add(out, "K slider (app rerun done)",
             _until(page, lambda pg: not pg.query_selector("[data-testid=stStatusWidget]"), 30) + shown_after)
        browser.close()
    out["outside"] = sorted(set(outside))
    return out


def _collections(r: dict, gc_log: Path) -> str:
    """The server's full garbage collections from Start to the end of the run: a line for the report."""
    pauses = [float(d) for t, d in (line.split() for line in gc_log.read_text().splitlines())
              if float(t) >= r["training from"]] if gc_log.is_file() else []
    if not pauses:
        return "Full garbage collections in the server from Start on: none."
    return (f"Full garbage collections in the server from Start on (each stops every thread of it): "
            f"{len(pauses)}, median {statistics.median(pauses):.3f} s, longest {max(pauses):.3f} s.")


def report(r: dict, load: tuple) -> str:
    lines = ["# The app in Chromium: first pictures, page switches, controls", "",
             "'First picture': the view's first image or chart drawn, or its note that it has none yet. A view "
             "visited before the server's warm-up (torch, the demo's two runs) has ended first shows what is "
             "being prepared and the pretrained demo's latents; 'live' is when its own content (for Train, the "
             "Start button and the live cloud) is there.", "",
             f"`python -m benchmarks.app.app_latency {r['command']}`, one run, {os.cpu_count()} CPUs, load average at "
             "the start "
             f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min), LVM_TRAIN_TURNS "
             f"{os.environ.get('LVM_TRAIN_TURNS') or 'unset (one training turn per core; a page being drawn takes one back)'}"
             f", LVM_TRAIN_NICE {os.environ.get('LVM_TRAIN_NICE') or 'unset (10)'}. The app's default run (ours with ABP "
             "beside it, never ahead of ours) trains from Start on; the views after Train are timed while it trains.",
             "",
             "| view | page switch (s) | first picture (s) | live (s) |", "|---|---|---|---|"]
    lines += [f"| {v} | {t['switch']:.2f} | {t['picture']:.2f} | {t.get('ready', t['picture']):.2f} |"
              for v, t in r["views"].items()]
    lines += ["", "| control | effect shown after (s) | times measured | worst (s) |", "|---|---|---|---|"]
    lines += [f"| {c} | {statistics.median(t):.2f}{' (median)' if len(t) > 1 else ''} | {len(t)} | {max(t):.2f} |"
              for c, t in r["controls"].items()]
    rt = r["rates"]
    lines += ["", f"Train view while both train, over {rt['seconds']:.0f} s: {rt['redraws/s']:.2f} redraws/s, "
              f"{rt['iterations/s (ours, ABP beside)']:.2f} iterations/s of ours (ABP trains beside it).", "",
              r["collections"], "",
              f"Requests that left the machine: {r['outside'] or 'none'}.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "app")
    p.add_argument("--watch", type=float, default=30.0, help="seconds of training watched for the rates")
    p.add_argument("--repeats", type=int, default=5, help="times Pause (and Start again) and Step are measured")
    p.add_argument("--linger", type=float, default=0.0,
                   help="seconds on Home before Train (e.g. 20: the warm-up ends there, as when a lecture begins "
                        "on Home, and the first view with a chart loads the browser's chart library)")
    a = p.parse_args()
    load = os.getloadavg()
    a.out.mkdir(parents=True, exist_ok=True)
    gc_log = a.out / "app_latency_gc.log"
    gc_log.unlink(missing_ok=True)
    with app(gc_log) as url:
        r = measure(url, a.watch, a.out, a.repeats, a.linger)
    r["collections"] = _collections(r, gc_log)
    r["command"] = f"--watch {a.watch:g} --repeats {a.repeats} --linger {a.linger:g}"
    gc_log.unlink(missing_ok=True)
    text = report(r, load)
    (a.out / "app_latency.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
