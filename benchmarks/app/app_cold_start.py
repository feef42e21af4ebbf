"""The app's first seconds, cold: a fresh server and a fresh Chromium each time, Home, then Train.

    python -m benchmarks.app.app_cold_start [--starts 5] [--linger 0] [--settle 0]

Per start: Home's first picture after `goto`, when the last network request of that load finished (which,
and when it was asked for), the browser's long tasks (over 50 ms of script or layout on its main thread, from a
PerformanceObserver in the page) until Home's picture, then Train's page switch and first picture, clicked as
soon as Home's picture is there (the server's warm-up is importing torch then) or --linger s later, when
Home's image first appeared (on the page's clock, from its navigation start) and the longest task on the
browser's main thread after it (a click then waits for it), then the Anomaly view, clicked --settle s after
Train's first picture: its switch and first picture. Prints a table (no file); every start is one run on this
machine, and the load average at the start is printed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from benchmarks.app.app_latency import CHROMIUM, PICTURE, app, switch

LONG_TASKS = ("window.__lt = []; new PerformanceObserver(l => { for (const e of l.getEntries()) "
              "window.__lt.push([e.startTime, e.duration]) }).observe({type: 'longtask', buffered: true});")
FIRST = ("window.__first = {}; new MutationObserver(() => { for (const [k, s] of "
         "[['image', '[data-testid=stImage] img']]) "
         "if (!(k in window.__first) && document.querySelector(s)) "
         "window.__first[k] = performance.now(); }).observe(document, {subtree: true, childList: true});")


def start(settle: float = 0.0, linger: float = 0.0) -> dict:
    """One cold start: a fresh server and browser; Train is clicked `linger` s after Home's first picture,
    Anomaly `settle` s after Train's."""
    from playwright.sync_api import sync_playwright

    with app() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.add_init_script(LONG_TASKS)
        page.add_init_script(FIRST)  # when Home's image and its chart each first appear (page clock)
        asked: dict[str, float] = {}
        finished: list[tuple[float, float, str]] = []  # (finished, asked, name) of each request
        page.on("request", lambda r: asked.setdefault(r.url, time.monotonic()))
        page.on("requestfinished", lambda r: finished.append((time.monotonic(), asked.get(r.url, 0.0),
                                                               r.url.rsplit("/", 1)[-1][:24])))
        t0 = time.monotonic()
        page.goto(url)
        page.wait_for_selector(PICTURE, timeout=120_000)
        done, since, name = max(finished)
        out = {"home": time.monotonic() - t0, "requests done": done - t0, "last request": (name, since - t0),
               "long tasks": [(s / 1e3, d / 1e3) for s, d in page.evaluate("window.__lt")]}
        time.sleep(linger)
        out["train switch"], out["train picture"] = switch(page, "Train")
        time.sleep(settle)
        out["anomaly switch"], out["anomaly picture"] = switch(page, "Anomaly")
        out["image"] = page.evaluate("window.__first").get("image", float("nan")) / 1e3
        later = [d / 1e3 for s, d in page.evaluate("window.__lt") if s / 1e3 > out["image"]]
        out["longest task after"] = max(later, default=0.0)
        browser.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--settle", type=float, default=0.0,
                   help="seconds between Train's first picture and the click on Anomaly (e.g. 15: after the "
                        "server's warm-up, so that Anomaly's chart time is the browser's and the view's own)")
    p.add_argument("--linger", type=float, default=0.0,
                   help="seconds on Home after its first picture before the click on Train (e.g. 15: the warm-up "
                        "ends on Home, and Train shows no waiting view)")
    a = p.parse_args()
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; "
          f"Train clicked {a.linger:g} s after Home's first picture, Anomaly {a.settle:g} s after Train's\n")
    print("| start | Home's first picture (s) | its requests done (s) | the last of them: asked at (s) "
          "| long tasks before it: start+duration (s) | Train: switch (s) | Train: first picture (s) "
          "| Home's image, on the page clock (s) | the longest task after it (s) | Anomaly: switch (s) "
          "| Anomaly: first picture (s) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
    runs = []
    for i in range(a.starts):
        r = start(a.settle, a.linger)
        runs.append(r)
        tasks = ", ".join(f"{s:.2f}+{d:.2f}" for s, d in r["long tasks"] if s < r["home"])
        name, since = r["last request"]
        print(f"| {i + 1} | {r['home']:.2f} | {r['requests done']:.2f} | {name}: {since:.2f} | {tasks} "
              f"| {r['train switch']:.2f} "
              f"| {r['train picture']:.2f} | {r['image']:.2f} | {r['longest task after']:.2f} "
              f"| {r['anomaly switch']:.2f} | {r['anomaly picture']:.2f} |", flush=True)
        time.sleep(2)
    print("\n| | median | worst |\n|---|---|---|")
    for key in ("home", "train switch", "train picture", "image", "longest task after", "anomaly switch",
                "anomaly picture"):
        v = [r[key] for r in runs]
        print(f"| {key} | {statistics.median(v):.2f} | {max(v):.2f} |")


if __name__ == "__main__":
    main()
