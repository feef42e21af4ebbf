"""A lecture under load, in Debian's Chromium: one server, one presenter training the demo, its run watched by
many viewers (its link in browsers of their own), and visitors who open the Train view for a run of their own
(beyond the cap on runs they are told so and wait). A benchmark, not a test.

    python -m benchmarks.app.lecture_load [--viewers 20] [--visitors 9] [--watch 45] [--background 25]
                                          [--out benchmarks/app/lecture_load.md]

Reports the presenter's iterations/s alone and with every context open (and their ratio), the server's peak RSS
and its CPU while all are open, the time each page takes to show its first picture (for a visitor beyond the cap:
the cap's message), exceptions on any page, and the lecture threads (training and keeper) left 30 s after every
context has closed. Pages open one after another (a class arriving), each once the one before has shown its
first picture (at most --first-wait s). The last `--background N` pages (viewers and visitors) are frozen through the
DevTools protocol once their first picture is there, as a browser freezes a background tab: they stop asking
for redraws and painting, so that 30 browsers do not take the cores the server needs (headless Chromium has no
background tabs: every page is visible). Each figure is one run; the load average is recorded.

In a lecture the browsers run on the students' own devices, not on the server. Here all thirty share the
server's two cores, so by default they run at the lowest CPU priority (`_chromium`; the server and its training
threads at the script's own): every page still asks the server for everything it would (a session each, the redraws
sent to every viewer, the cap's page), and the browsers' painting takes only the time the server leaves.
`--browsers-equal` gives the browsers an equal claim on the cores (a harsher test than any lecture).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks.app.server import streamlit_server

from benchmarks.app.app_latency import CHROMIUM

ROOT = Path(__file__).resolve().parents[2]  # the repository (app.py)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
STATE = re.compile(r"(ready|training|paused|stopped) · iteration (\d+)")
# records, in the page itself, when its first picture (or the cap's message, or an exception) shows
FIRST = """
new MutationObserver((_, obs) => {
  if (window.__first) return;
  const img = document.querySelector('[data-testid=stMain] [data-testid=stImage] img');
  const note = document.body && /as many runs as it can/.test(document.body.innerText);
  if ((img && img.complete && img.naturalWidth) || note || document.querySelector('[data-testid=stException]')) {
    window.__first = [performance.now() / 1000, img ? 'picture' : (note ? 'cap message' : 'exception')];
    obs.disconnect();
  }
}).observe(document, {subtree: true, childList: true, attributes: true});
"""
LECTURE_THREADS = ("lvm-session", "lvm-keeper")


def _iteration(page) -> int:
    m = STATE.search(page.evaluate("document.body.innerText"))
    return int(m.group(2)) if m else -1


def _rate(page, seconds: float) -> float:
    """The presenter's iterations per second over `seconds`, read off its page."""
    i0, t0 = _iteration(page), time.monotonic()
    time.sleep(seconds)
    return (_iteration(page) - i0) / (time.monotonic() - t0)


def _threads(pid: int) -> int:
    n = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            n += (t / "comm").read_text().strip() in LECTURE_THREADS
        except OSError:
            pass
    return n


class Sampler:
    """The server's CPU (per cent of one core, all its threads) and resident memory, every half second."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _cpu(self) -> float:
        f = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def _rss(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.samples.append((time.monotonic(), self._cpu(), self._rss()))
            except OSError:
                return

    def cpu_between(self, t0: float, t1: float) -> float:
        s = [x for x in self.samples if t0 <= x[0] <= t1]
        return 100 * (s[-1][1] - s[0][1]) / (s[-1][0] - s[0][0]) if len(s) > 1 else float("nan")

    def peak_rss(self) -> float:
        return max(x[2] for x in self.samples)

    def stop(self) -> None:
        self._stop.set()


CPU_GROUP = Path("/sys/fs/cgroup/cpu/lvm-lecture-browsers")  # cgroup v1's cpu controller


def _chromium(low: bool) -> tuple[str, str]:
    """Debian's Chromium, or a wrapper that starts it (and so every process it forks) at the lowest CPU priority
    this machine grants, and how. Niceness alone does not hold for root: Chromium sets its own processes' nice
    values (to -8 for some), so where cgroup v1's cpu controller is writable the browsers go in a group of their
    own with the smallest weight (cpu.shares 2 against the server's 1,024); elsewhere they run at nice 19, which an
    unprivileged Chromium cannot lower."""
    if not low:
        return CHROMIUM, "the server's"
    try:
        CPU_GROUP.mkdir(exist_ok=True)
        (CPU_GROUP / "cpu.shares").write_text("2")
        enter = f"echo $$ > {CPU_GROUP / 'cgroup.procs'}\n"
        how = "a cpu cgroup of their own, cpu.shares 2 (the server 1,024)"
    except OSError:
        enter, how = "", "nice 19"
    wrapper = Path(tempfile.mkdtemp(prefix="lvm-chromium-")) / "chromium"
    wrapper.write_text(f'#!/bin/sh\n{enter}exec nice -n 19 {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), how


@contextmanager
def server():
    with streamlit_server(tries=600) as got:
        yield got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--visitors", type=int, default=9)
    ap.add_argument("--watch", type=float, default=45.0, help="seconds each iterations/s is measured over")
    ap.add_argument("--background", type=int, default=25, help="pages frozen as background tabs")
    ap.add_argument("--browsers-equal", action="store_true",
                    help="give the browsers the server's CPU priority (by default they get the lowest)")
    ap.add_argument("--first-wait", type=float, default=120.0, help="seconds a page may take to show a picture")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("lecture_load.md"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    load0 = os.getloadavg()
    os.environ.setdefault("LVM_RUNS_DIR", tempfile.mkdtemp(prefix="lvm-runs-"))  # the benchmark's runs only
    rows, errors = [], []
    chromium, priority = _chromium(not args.browsers_equal)
    with server() as (url, proc), sync_playwright() as p:
        pid = proc.pid
        sampler = Sampler(pid)
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)

        def open_page(kind: str, where: str):
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            ctx.add_init_script(FIRST)
            page = ctx.new_page()
            page.set_default_timeout(300_000)
            page.on("pageerror", lambda e: errors.append(f"{kind}: {e}"))
            page.goto(where, wait_until="commit")
            return {"kind": kind, "ctx": ctx, "page": page, "first": None, "frozen": False}

        presenter = open_page("presenter", f"{url}/train")
        presenter["page"].get_by_role("button", name="Start").click()
        presenter["page"].wait_for_function(r"() => /training · iteration (1[6-9]|[2-9]\d|\d{3,})/.test("
                                            "document.body.innerText)")  # two corrections done
        presenter["first"] = presenter["page"].evaluate("window.__first || null")
        alone = _rate(presenter["page"], args.watch)
        link = presenter["page"].url
        print(f"alone: {alone:.2f} it/s (load average {os.getloadavg()[0]:.2f})", flush=True)

        pages = [presenter]
        t_open = time.monotonic()
        kinds = [("viewer", link)] * args.viewers + [("visitor", f"{url}/train")] * args.visitors
        for i, (kind, where) in enumerate(kinds, start=1):  # they arrive one after another, as a class does
            r = open_page(kind, where)
            pages.append(r)
            t_page = time.monotonic()
            while r["first"] is None and time.monotonic() - t_page < args.first_wait:
                time.sleep(0.5)
                r["first"] = r["page"].evaluate("window.__first || null")
            if r["first"] is not None and i > len(kinds) - args.background:  # the last ones go to the background
                cdp = r["ctx"].new_cdp_session(r["page"])
                cdp.send("Page.setWebLifecycleState", {"state": "frozen"})
                r["frozen"], r["cdp"] = True, cdp
            print(f"{kind} {i}: first picture {r['first']}", flush=True)
        all_open = time.monotonic() - t_open
        print(f"{len(kinds)} pages opened in {all_open:.0f} s", flush=True)
        t0 = time.monotonic()
        loaded = _rate(presenter["page"], args.watch)
        cpu = sampler.cpu_between(t0, time.monotonic())
        load1 = os.getloadavg()
        for r in pages:
            if r["frozen"]:
                r["cdp"].send("Page.setWebLifecycleState", {"state": "active"})
        exceptions = sum(r["page"].locator("[data-testid=stException]").count() for r in pages)
        for r in pages:
            r["ctx"].close()
        t_close = time.monotonic()
        time.sleep(30)
        left = _threads(pid)
        peak = sampler.peak_rss()
        sampler.stop()
        browser.close()

    firsts = {k: [r["first"][0] for r in pages if r["kind"] == k and r["first"]] for k in ("presenter", "viewer",
                                                                                          "visitor")}
    shown = {k: sorted({r["first"][1] for r in pages if r["kind"] == k and r["first"]}) for k in firsts}
    missing = sum(r["first"] is None for r in pages)
    rows = [("contexts", f"{len(pages)} (1 presenter, {args.viewers} viewers of its run, {args.visitors} visitors; "
                         f"{sum(r['frozen'] for r in pages)} frozen as background tabs after their first picture)"),
            ("the browsers' CPU priority", priority),
            ("presenter iterations/s alone", f"{alone:.2f}"),
            ("presenter iterations/s with every context open", f"{loaded:.2f} ({loaded / alone:.2f} of alone)"),
            ("server peak RSS", f"{peak:,.0f} MB"),
            ("pages opened one after another, each once the one before showed its picture", f"{all_open:.0f} s"),
            ("server CPU while all are open", f"{cpu:.0f} % of one core (2 cores in all)")]
    for k, v in firsts.items():
        if v:
            rows.append((f"first picture, {k} ({', '.join(shown[k])})",
                         f"median {statistics.median(v):.1f} s, max {max(v):.1f} s (n = {len(v)})"))
    rows += [(f"pages that showed nothing in {args.first_wait:g} s", str(missing)),
             ("exceptions on the pages (shown / JS errors)", f"{exceptions} / {len(errors)}"),
             ("lecture threads left 30 s after every context closed", str(left)),
             ("load average (1 min) at the start / while measuring", f"{load0[0]:.2f} / {load1[0]:.2f}")]
    table = "\n".join(["| what | measured |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])
    print(table)
    args.out.write_text(f"# A lecture under load\n\n`python -m benchmarks.app.lecture_load --viewers {args.viewers} "
                        f"--visitors {args.visitors} --watch {args.watch:g} --background {args.background} "
                        f"--first-wait {args.first_wait:g}{' --browsers-equal' if args.browsers_equal else ''}`, "
                        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, LVM_MAX_RUNS "
                        f"{os.environ.get('LVM_MAX_RUNS', 'default (one per two cores)')}, {os.cpu_count()} cores. "
                        "One run; the machine was shared with other work (see the load average).\n\n"
                        f"{table}\n" + (f"\nJS errors: {errors[:5]}\n" if errors else ""))


if __name__ == "__main__":
    main()
