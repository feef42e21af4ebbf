"""The explorer's budget (issue 29), measured in Debian's Chromium on this machine: the app's training rate with
the Train view open against the same config in the CLI (ours and ABP as two concurrent one-thread processes,
in the same run of this script), the cloud's animation frame rate while training, hover and decode latency,
the first picture of Home, Train and Latent & OT, Start / Pause / Step latency, the bytes a redraw sends, and
the time to draw one frame of 2,000 and 12,000 points.

    python -m benchmarks.app.explorer_budget [--seconds 30] [--out benchmarks/app/explorer_budget.md]

Browser, server and training share the machine's cores; the load average at the start and the end is printed
beside the table. Nothing is asserted: it prints what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks.app.server import streamlit_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
LC = ("(k) => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stBidiComponentIsolated]')]"
      ".map(e => e.shadowRoot && e.shadowRoot.querySelector('.lc-root')).filter(r => r && r.lc && r.lc.plane)"
      ".map(r => r.lc)[k] || null")
BUDGET = {"training rate, app / CLI": ">= 0.9", "animation (frames/s)": ">= 20", "hover -> tooltip (ms)": "<= 100",
          "click -> decoded image (ms)": "<= 300", "first picture (s)": "<= 2 (warm server)",
          "Start / Pause / Step (s)": "<= 0.5"}


def cli_rate(seconds: float) -> dict[str, float]:
    """Iterations/s of the app's default runs (DEMO, ours and ABP beside it) as two concurrent CLI processes of
    one torch thread each, `seconds` of training each."""
    from dataclasses import asdict, replace

    from lvm.presets import DEMO
    from ui.registry import abp_config

    out = {}
    # the app trains until paused; DEMO's own epochs end within 30 s on this machine, and a run that ends early
    # would be counted over the whole window (too slow a CLI): both get epochs enough for the window
    demo = replace(DEMO, epochs=max(DEMO.epochs, 1000.0))
    with tempfile.TemporaryDirectory() as tmp:
        procs = {}
        for name, cfg in (("ours", demo), ("ABP", abp_config(demo))):
            path = Path(tmp) / f"{name}.json"
            path.write_text(json.dumps(asdict(cfg)))
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "lvm", "train", "--config", str(path), "--out", str(Path(tmp) / name),
                 "--max-seconds", str(seconds), "--threads", "1", "--device", "cpu"], cwd=ROOT,
                env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for name, p in procs.items():
            _, err = p.communicate()
            assert p.returncode == 0, err.decode()[-2000:]
            recs = [json.loads(line) for line in (Path(tmp) / name / "metrics.jsonl").read_text().splitlines()]
            out[name] = len(recs) / max(seconds, sum(r["seconds"] for r in recs))
    return out


@contextmanager
def app():
    with streamlit_server() as (url, _):
        yield url


def until(cond, timeout: float = 60.0) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            return float("inf")
        time.sleep(0.01)
    return time.monotonic() - t0


def status(page) -> tuple[str, int]:
    m = re.search(r"(ready|training|paused|stopped) · iteration (\d+)", page.evaluate("document.body.innerText"))
    return (m.group(1), int(m.group(2))) if m else ("", -1)


def go(page, view: str, ready: str) -> float:
    """Seconds from the click on `view`'s link until `ready` (a JS predicate) holds."""
    t0 = time.monotonic()
    page.get_by_role("link", name=view).first.click()
    page.wait_for_function(ready, timeout=120_000, polling=20)
    return time.monotonic() - t0


def measure(url: str, seconds: float, shots: Path | None) -> dict:
    from playwright.sync_api import sync_playwright

    r: dict = {"first picture (s)": {}, "controls (s)": {}}
    outside = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.on("request", lambda q: outside.append(q.url) if q.url.startswith("http") and not q.url.startswith(url)
                else None)
        page.goto(url)
        page.wait_for_selector("[data-testid=stImage] img", timeout=120_000)
        page.wait_for_timeout(20_000)  # a warm server: its warm-up (torch, the demo's runs) ends while Home is shown
        canvas_drawn = f"() => {{ const c = ({LC})(0); return !!(c && c.frames_drawn >= 1); }}"
        r["first picture (s)"]["Train"] = go(page, "Train", canvas_drawn)
        r["first picture (s)"]["Home"] = go(page, "Home", "() => !!document.querySelector('[data-testid=stImage] img')")
        r["first picture (s)"]["Train (again)"] = go(page, "Train", canvas_drawn)
        page.get_by_role("button", name="Start").click()
        r["controls (s)"]["Start"] = until(lambda: status(page)[0] == "training")
        until(lambda: status(page)[1] >= 10, 120)
        # the training rate with the Train view open: the status line's iteration over wall time
        i0, t0 = status(page)[1], time.monotonic()
        f0 = page.evaluate(f"() => ({LC})(0).frames_drawn")
        fr0 = time.monotonic()
        page.wait_for_timeout(5_000)
        r["animation (frames/s)"] = (page.evaluate(f"() => ({LC})(0).frames_drawn") - f0) / (time.monotonic() - fr0)
        page.wait_for_timeout(max(0.0, seconds - 5) * 1000)
        r["app iterations/s (ours)"] = (status(page)[1] - i0) / (time.monotonic() - t0)
        m = re.search(r"([\d,]+) bytes sent to the explorer", page.evaluate("document.body.innerText"))
        r["bytes per redraw"] = int(m.group(1).replace(",", "")) if m else -1
        if shots:
            page.screenshot(path=str(shots / "budget_train.png"))
        page.get_by_role("button", name="Pause").click()
        r["controls (s)"]["Pause"] = until(lambda: status(page)[0] == "paused")
        page.wait_for_timeout(1500)
        it = status(page)[1]
        page.get_by_role("button", name="Step").click()
        r["controls (s)"]["Step"] = until(lambda: status(page)[1] > it)
        page.wait_for_timeout(2500)
        r["hover -> tooltip (ms)"] = page.evaluate(f"""() => new Promise(done => {{
            const lc = ({LC})(0), pl = lc.plane, rc = pl.layout()[0], pos = pl.panels[0].pos, b = pl.canvas.getBoundingClientRect();
            const [x, y] = pl.toScreen(rc, pos[0], pos[1]);
            const t0 = performance.now();
            pl.canvas.dispatchEvent(new PointerEvent('pointermove', {{clientX: b.left + x, clientY: b.top + y, pointerType: 'mouse', bubbles: true}}));
            requestAnimationFrame(() => requestAnimationFrame(() => done(pl.tip.style.display === 'block' ? performance.now() - t0 : -1)));
        }})""")
        decode = []
        for k in range(5):
            page.evaluate(f"""() => {{ const lc = ({LC})(0), pl = lc.plane, rc = pl.layout()[0], b = pl.canvas.getBoundingClientRect();
                lc.t_click = performance.now(); lc.click(rc.x + 12 + {k * 3}, rc.y + 30); }}""")
            page.wait_for_function(f"""() => {{ const lc = ({LC})(0), i = lc.inspector.querySelector('img[data-testid=latent-cloud-decoded]');
                if (i && i.complete && i.naturalWidth) {{ lc.t_done = lc.t_done || performance.now(); return true; }} return false; }}""",
                                   timeout=30_000, polling="raf")
            decode.append(page.evaluate(f"() => {{ const lc = ({LC})(0), d = lc.t_done - lc.t_click; lc.t_done = 0; return d; }}"))
            page.wait_for_timeout(300)
        r["click -> decoded image (ms)"] = statistics.median(decode)
        r["decode runs (ms)"] = decode
        r["frame time (ms)"] = {n: page.evaluate(f"""() => {{
            const lc = ({LC})(0), pl = lc.plane, saved = pl.panels.map(p => p.pos), n = {n};
            pl.panels.forEach(p => {{ const a = new Float32Array(2 * n); for (let i = 0; i < 2 * n; i++) a[i] = (Math.random() - 0.5) * 5; p.pos = a; }});
            const t = []; for (let k = 0; k < 30; k++) {{ const t0 = performance.now(); pl.draw(); t.push(performance.now() - t0); }}
            pl.panels.forEach((p, k) => {{ p.pos = saved[k]; }}); t.sort((a, b) => a - b); return t[15]; }}""")
            for n in (2000, 12000)}
        r["first picture (s)"]["Latent & OT"] = go(page, "Latent & OT", canvas_drawn)
        browser.close()
    r["outside"] = sorted(set(outside))
    return r


def table(r: dict, cli: dict, loads: tuple) -> str:
    ratio = r["app iterations/s (ours)"] / cli["ours"]
    rows = [("training rate, app / CLI", f"{ratio:.2f} (app {r['app iterations/s (ours)']:.2f} it/s with the Train "
             f"view open; CLI {cli['ours']:.2f} it/s, ABP beside it {cli['ABP']:.2f})"),
            ("animation (frames/s)", f"{r['animation (frames/s)']:.1f}"),
            ("hover -> tooltip (ms)", f"{r['hover -> tooltip (ms)']:.0f} (to the second painted frame)"),
            ("click -> decoded image (ms)", f"{r['click -> decoded image (ms)']:.0f} (median of 5: "
             + ", ".join(f"{d:.0f}" for d in r["decode runs (ms)"]) + ")"),
            ("first picture (s)", ", ".join(f"{k} {v:.2f}" for k, v in r["first picture (s)"].items())),
            ("Start / Pause / Step (s)", ", ".join(f"{k} {v:.2f}" for k, v in r["controls (s)"].items()))]
    lines = [f"load average at the start {loads[0][0]:.2f} / {loads[0][1]:.2f} / {loads[0][2]:.2f}, at the end "
             f"{loads[1][0]:.2f} / {loads[1][1]:.2f} / {loads[1][2]:.2f} (1 / 5 / 15 min), {os.cpu_count()} CPUs", "",
             "| budget | target | measured |", "|---|---|---|"]
    lines += [f"| {k} | {BUDGET[k]} | {v} |" for k, v in rows]
    lines += ["", f"bytes sent per redraw of the Train view (ours and ABP, no new correction): {r['bytes per redraw']:,}",
              "frame time (draw one frame of the Train view's two panels, median of 30): "
              + ", ".join(f"{n:,} points per panel {t:.1f} ms" for n, t in r["frame time (ms)"].items()),
              f"requests that left the machine: {r['outside'] or 'none'}"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="training seconds per rate measurement")
    ap.add_argument("--out", default="", help="also write the table here (markdown)")
    ap.add_argument("--shots", default="", help="a folder for the Train view's screenshot")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    load0 = os.getloadavg()
    cli = cli_rate(a.seconds)
    with app() as url:
        r = measure(url, a.seconds, Path(a.shots) if a.shots else None)
    text = table(r, cli, (load0, os.getloadavg()))
    print(text)
    if a.out:
        Path(a.out).write_text(f"# The explorer's budget\n\n`python -m benchmarks.app.explorer_budget "
                               f"{' '.join(sys.argv[1:])}`\n\n{text}\n")


if __name__ == "__main__":
    main()
