"""A lecture under load, in Debian's Chromium: one server, one presenter training the demo, its run watched by
many viewers (its link in browsers of their own), and visitors who open the Train view for a run of their own
(beyond the cap on runs they are told so and wait). A benchmark, not a test.

    python -m benchmarks.app.lecture_load [--viewers 20] [--visitors 9] [--watch 45] [--background 29]
                                          [--background-mode frozen|hidden] [--browser-cores 1]
                                          [--out benchmarks/app/lecture_load.md]

Reports the presenter's iterations/s alone and with every context open (and their ratio), the server's peak RSS
and its CPU while all are open, the time each page takes to show its first picture (for a visitor beyond the cap:
the cap's message), exceptions on any page, and the lecture threads (training and keeper) left 30 s after every
context has closed. Pages open one after another (a class arriving), each once the one before has shown its
first picture (at most --first-wait s). The last `--background N` pages (default: every viewer and visitor) go to
the background once their first picture is there. Headless Chromium has no background tabs (every page is
visible), so the script makes them: `--background-mode frozen` (the default) freezes the page through the
DevTools protocol, as a browser freezes a tab left in the background (Chrome also throttles a hidden tab's timers
to once a minute after five minutes): it asks for no redraws; `hidden` only tells the page it is hidden
(`document.hidden`): the explorer stops animating while Streamlit's timers still ask for every redraw, once a
second, so the server does its whole work for every page, and each page's browser its share (about 0.07 of a
core here per page: past about 14 pages at one core, pages took over 2 minutes to show their first picture).
Each figure is one run; the load average is recorded.

In a lecture the browsers run on the students' own devices, not on the server. Here all thirty share the
server's two cores, so by default they are held to one core in all (`--browser-cores 1`, a cpu cgroup's quota;
`_chromium`): every page opens its session on the server (and, until it goes to the background, asks for its
redraws) and the server keeps the other core. Thirty browsers need more than that to show their
pages quickly (at half a core, or at the lowest priority, a page took 30-100 s to show its first picture), so
the first-picture times say more about the browsers here than about the server; the server's own CPU is
reported apart from its training threads'. This script and Playwright's driver, the clients' side too, share the
browsers' core (`_join_browsers`). `--browser-cores 0` gives the browsers an equal claim on the cores.
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
window.__hide = () => {  // a background tab: hidden, so no animation frames are asked for
  Object.defineProperty(document, 'hidden', {get: () => true, configurable: true});
  Object.defineProperty(document, 'visibilityState', {get: () => 'hidden', configurable: true});
  document.dispatchEvent(new Event('visibilitychange'));
};
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
    """The server's CPU (per cent of one core: all its threads, and its training threads alone) and resident
    memory, every half second."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _cpu(self) -> tuple[float, float]:
        def seconds(stat: Path) -> float:
            f = stat.read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        training = 0.0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                if (task / "comm").read_text().strip().startswith(LECTURE_THREADS[0]):
                    training += seconds(task / "stat")
            except OSError:  # a thread that ended meanwhile
                pass
        return seconds(Path(f"/proc/{self.pid}/stat")), training

    def _rss(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.samples.append((time.monotonic(), *self._cpu(), self._rss()))
            except OSError:
                return

    def cpu_between(self, t0: float, t1: float) -> tuple[float, float]:
        """(all threads, training threads) in per cent of one core between t0 and t1."""
        s = [x for x in self.samples if t0 <= x[0] <= t1]
        if len(s) < 2:
            return float("nan"), float("nan")
        dt = s[-1][0] - s[0][0]
        return 100 * (s[-1][1] - s[0][1]) / dt, 100 * (s[-1][2] - s[0][2]) / dt

    def peak_rss(self) -> float:
        return max(x[3] for x in self.samples)

    def stop(self) -> None:
        self._stop.set()


CPU_GROUP = Path("/sys/fs/cgroup/cpu/lvm-lecture-browsers")  # cgroup v1's cpu controller


def _chromium(cores: float) -> tuple[str, str, bool]:
    """Debian's Chromium, or a wrapper that starts it (and so every process it forks) in a cpu cgroup capped at
    `cores` cores in all (cfs quota), what was done, and whether the cgroup is in use. Where the cgroup cannot
    be made the browsers run at nice 19 instead (a root Chromium resets its processes' nice values, so that is
    weaker)."""
    if not cores:
        return CHROMIUM, "none: the server's own priority", False
    try:
        CPU_GROUP.mkdir(exist_ok=True)
        (CPU_GROUP / "cpu.shares").write_text("1024")  # a nice-0 process's weight, up to the quota
        (CPU_GROUP / "cpu.cfs_period_us").write_text("100000")
        (CPU_GROUP / "cpu.cfs_quota_us").write_text(str(int(cores * 100000)))
        enter, how = f"echo $$ > {CPU_GROUP / 'cgroup.procs'}\n", f"all of them together at most {cores:g} core"
    except OSError:
        enter, how = "", "nice 19 (no cpu cgroup here)"
    wrapper = Path(tempfile.mkdtemp(prefix="lvm-chromium-")) / "chromium"
    wrapper.write_text(f'#!/bin/sh\n{enter}exec {CHROMIUM} "$@"\n' if enter else
                       f'#!/bin/sh\nexec nice -n 19 {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), how, bool(enter)


def _join_browsers(exclude: int) -> None:
    """Move this process and its children other than the server (Playwright's driver) into the browsers' cpu
    cgroup: they drive the browsers and would not run on a lecture's server either."""
    kids = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    for pid in [os.getpid(), *(int(k) for k in kids.read_text().split() if int(k) != exclude)]:
        try:
            (CPU_GROUP / "cgroup.procs").write_text(str(pid))
        except OSError:  # a child that ended meanwhile
            pass


@contextmanager
def server():
    with streamlit_server(tries=600) as got:
        yield got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--visitors", type=int, default=9)
    ap.add_argument("--watch", type=float, default=45.0, help="seconds each iterations/s is measured over")
    ap.add_argument("--background", type=int, default=29, help="pages sent to the background")
    ap.add_argument("--background-mode", choices=("frozen", "hidden"), default="frozen")
    ap.add_argument("--browser-cores", type=float, default=1.0,
                    help="CPU the 30 browsers may use in all (0: no limit, an equal claim with the server)")
    ap.add_argument("--first-wait", type=float, default=120.0, help="seconds a page may take to show a picture")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("lecture_load.md"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    load0 = os.getloadavg()
    os.environ.setdefault("LVM_RUNS_DIR", tempfile.mkdtemp(prefix="lvm-runs-"))  # the benchmark's runs only
    rows, errors = [], []
    chromium, priority, grouped = _chromium(args.browser_cores)
    with server() as (url, proc), sync_playwright() as p:
        pid = proc.pid
        sampler = Sampler(pid)
        if grouped:  # this script and Playwright's driver are the clients' side
            _join_browsers(exclude=pid)
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)

        def open_page(kind: str, where: str):
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            ctx.add_init_script(FIRST)
            page = ctx.new_page()
            page.set_default_timeout(300_000)
            page.on("pageerror", lambda e: errors.append(f"{kind}: {e}"))
            page.goto(where, wait_until="commit")
            return {"kind": kind, "ctx": ctx, "page": page, "first": None, "hidden": False}

        presenter = open_page("presenter", f"{url}/train")
        presenter["page"].get_by_role("button", name="Start").click()
        presenter["page"].wait_for_function(r"() => /training · iteration (1[6-9]|[2-9]\d|\d{3,})/.test("
                                            "document.body.innerText)")  # two corrections done
        presenter["first"] = presenter["page"].evaluate("window.__first || null")
        t_alone = time.monotonic()
        alone = _rate(presenter["page"], args.watch)
        cpu_alone = sampler.cpu_between(t_alone, time.monotonic())
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
                if args.background_mode == "hidden":
                    r["page"].evaluate("window.__hide()")
                else:
                    r["cdp"] = r["ctx"].new_cdp_session(r["page"])
                    r["cdp"].send("Page.setWebLifecycleState", {"state": "frozen"})
                r["hidden"] = True
            print(f"{kind} {i}: first picture {r['first']}", flush=True)
        all_open = time.monotonic() - t_open
        print(f"{len(kinds)} pages opened in {all_open:.0f} s", flush=True)
        t0 = time.monotonic()
        loaded = _rate(presenter["page"], args.watch)
        cpu = sampler.cpu_between(t0, time.monotonic())
        load1 = os.getloadavg()
        for r in pages:
            if "cdp" in r:  # thawed, so that their pages can be read
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
                         f"{sum(r['hidden'] for r in pages)} sent to the background ({args.background_mode}) after "
                         "their first picture)"),
            ("the browsers' CPU", priority),
            ("presenter iterations/s alone", f"{alone:.2f}"),
            ("presenter iterations/s with every context open", f"{loaded:.2f} ({loaded / alone:.2f} of alone)"),
            ("server peak RSS", f"{peak:,.0f} MB"),
            ("pages opened one after another, each once the one before showed its picture", f"{all_open:.0f} s"),
            ("server CPU, presenter alone: all threads / training / the rest (pages, sessions)",
             f"{cpu_alone[0]:.0f} / {cpu_alone[1]:.0f} / {cpu_alone[0] - cpu_alone[1]:.0f} % of one core"),
            ("server CPU while all are open: all threads / training / the rest (pages, sessions)",
             f"{cpu[0]:.0f} / {cpu[1]:.0f} / {cpu[0] - cpu[1]:.0f} % of one core (2 cores in all)")]
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
                        f"--first-wait {args.first_wait:g} --background-mode {args.background_mode} "
                        f"--browser-cores {args.browser_cores:g}`, "
                        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, LVM_MAX_RUNS "
                        f"{os.environ.get('LVM_MAX_RUNS', 'default (one per two cores)')}, {os.cpu_count()} cores. "
                        "One run; the machine was shared with other work (see the load average).\n\n"
                        f"{table}\n" + (f"\nJS errors: {errors[:5]}\n" if errors else ""))


if __name__ == "__main__":
    main()
