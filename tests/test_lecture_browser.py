"""The lecture hall in Debian's Chromium: the browser that creates a run presents it and its link opens it as a
viewer (two browser contexts), the cap on runs, a run that ends when its last viewer leaves and resumes from its
link, and a restarted server that resumes a run at the iteration it reached."""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from app_server import ARGS, CHROMIUM, MISSING, skip_without_browser, streamlit_app, sync_playwright, thread_count
from lvm.live import store
from lvm.live.session import THREAD_NAME
from ui.registry import GRACE

skip_without_browser()
pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATE = (r"() => { const m = document.body.innerText.match(/(ready|training|paused|stopped) · iteration (\d+)/);"
         r" return m ? [m[1], parseInt(m[2])] : null; }")
VIEWER_LINE = "The presenter controls this run"
FULL = "This server is training as many runs as it can"
LEAVE = 15  # seconds at most for the lecture's slot to free once its last tabs close (their holds go at once)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(store.DIR_ENV, str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("LVM_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _page(browser, storage: dict | None = None):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1100}, storage_state=storage)
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    return ctx, page


def _state(page) -> tuple[str, int] | None:
    got = page.evaluate(STATE)
    return tuple(got) if got else None


def _until(page, pred: str, arg=None, timeout: float = 120) -> None:
    page.wait_for_function(f"(a) => {{ const s = ({STATE})(); return s !== null && ({pred}); }}", arg=arg,
                           timeout=timeout * 1000)


def _settled(page, quiet: float = 2.0, timeout: float = 60) -> int:
    """The iteration of a paused run once the page has shown the same one for `quiet` seconds: Pause cuts the
    iteration in flight short, but it still ends (and is counted) after the page may have drawn "paused"."""
    t0, last, since = time.monotonic(), None, time.monotonic()
    while time.monotonic() - t0 < timeout:
        now = _state(page)
        if now != last:
            last, since = now, time.monotonic()
        elif now is not None and now[0] == "paused" and time.monotonic() - since >= quiet:
            return now[1]
        time.sleep(0.1)
    raise AssertionError(f"the paused run's iteration did not settle: {last}")


def _keys(page, *keys: str) -> None:
    """Press keys with the focus on the page itself (not in a field, where shortcuts do nothing)."""
    page.locator("h1").first.click()
    for k in keys:
        page.keyboard.press(k)


def _lecture_threads(pid: int) -> int:
    return thread_count(pid, THREAD_NAME) + thread_count(pid, store.THREAD_NAME)


def test_the_presenter_controls_the_run_and_a_viewer_of_its_link_watches_it(runs_dir, shots) -> None:
    assert not MISSING, f"CI=true but {MISSING} missing"
    with streamlit_app() as (url, proc), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pctx, presenter = _page(browser)
        presenter.goto(f"{url}/train")
        presenter.get_by_role("button", name="Start").wait_for()
        link = presenter.url
        assert re.fullmatch(r".*/train\?run=[0-9a-f]{10}", link)  # the link carries the run id and nothing else
        _keys(presenter, "Space")  # Start
        _until(presenter, "s[0] === 'training' && s[1] >= 2")

        vctx, viewer = _page(browser)  # another browser: the link as the students get it
        viewer.goto(link)
        viewer.get_by_text(VIEWER_LINE).wait_for()
        for name in ("Start", "Pause", "Step", "Reset"):
            assert viewer.get_by_role("button", name=name).count() == 0
        assert viewer.get_by_role("slider", name="alpha (Eq. 10)").count() == 0
        assert viewer.get_by_text("Data, model and schedule").count() == 0
        it = _state(viewer)[1]
        _until(viewer, "s[0] === 'training' && s[1] > a", it)  # live
        _keys(viewer, "Space", "s", "Home")  # a viewer's shortcuts do nothing
        time.sleep(2)
        assert _state(presenter)[0] == "training" and _state(presenter)[1] >= it
        viewer.screenshot(path=str(shots / "viewer_train.png"), full_page=True)
        viewer.get_by_role("link", name="Latent & OT").first.click()  # the other views are the viewer's to explore
        viewer.get_by_role("heading", name="One correction").wait_for()
        viewer.get_by_role("link", name="Train").first.click()
        viewer.get_by_text(VIEWER_LINE).wait_for()

        _keys(presenter, "Space")  # Pause: the viewer sees it
        _until(viewer, "s[0] === 'paused'")
        paused = _settled(presenter)
        presenter.reload()  # the presenter's key is in its browser (a cookie), not in the URL
        presenter.get_by_role("button", name="Start").wait_for()
        assert presenter.url == link and presenter.get_by_text(VIEWER_LINE).count() == 0
        _keys(presenter, "s")  # Step
        _until(viewer, "s[1] === a + 1", paused)
        viewer.reload()  # a viewer stays a viewer
        viewer.get_by_text(VIEWER_LINE).wait_for()
        assert viewer.get_by_role("button", name="Start").count() == 0
        stepped = _state(viewer)[1]
        _keys(presenter, "Home")  # Reset: back to iteration 0, for everyone
        _until(viewer, "s[0] === 'ready' && s[1] === 0")
        print(f"presenter at {link}: paused at {paused}, stepped to {stepped}, reset; the viewer saw each")
        browser.close()


def test_a_restarted_server_resumes_the_run_at_the_iteration_it_reached(runs_dir) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pctx, presenter = _page(browser)
        with streamlit_app() as (url, proc):
            presenter.goto(f"{url}/train")
            presenter.get_by_role("button", name="Start").click()
            _until(presenter, "s[0] === 'training' && s[1] >= 12", timeout=240)
            presenter.get_by_role("button", name="Pause").click()
            _until(presenter, "s[0] === 'paused'")
            before = _settled(presenter)
            rid = presenter.url.split("run=")[1]
            t0 = time.monotonic()  # the Keeper writes a Pause within about a second
            while not (store.exists(rid) and store.load(rid)[0]["main"]["trainer"]["iteration"] == before):
                assert time.monotonic() - t0 < 20, "the paused run was not written"
                time.sleep(0.5)
            proc.send_signal(signal.SIGKILL)  # no goodbye: a lid closed, a Ctrl-C too many
            proc.wait()
        with streamlit_app() as (url2, proc2):
            vctx, viewer = _page(browser)
            viewer.goto(f"{url2}/train?run={rid}")
            viewer.get_by_text(VIEWER_LINE).wait_for()
            _until(viewer, "s[0] === 'paused'")
            assert _state(viewer)[1] == before
            presenter.goto(f"{url2}/train?run={rid}")  # the same browser: it still presents the run
            presenter.get_by_role("button", name="Start").wait_for()
            assert _state(presenter) == ("paused", before)
            presenter.get_by_role("button", name="Start").click()
            _until(viewer, "s[0] === 'training' && s[1] > a", before)
            print(f"run {rid}: iteration {before} before the kill -9, {before} after the restart, then "
                  f"{_state(viewer)[1]} training on")
        browser.close()


def test_beyond_the_cap_a_visitor_watches_or_waits_and_an_unseen_run_ends_and_comes_back(runs_dir, shots,
                                                                                          monkeypatch) -> None:
    monkeypatch.setenv("LVM_MAX_RUNS", "1")
    with streamlit_app() as (url, proc), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pctx, presenter = _page(browser)
        presenter.goto(f"{url}/train")
        presenter.get_by_role("button", name="Start").click()
        _until(presenter, "s[0] === 'training' && s[1] >= 3", timeout=240)
        rid = presenter.url.split("run=")[1]

        wctx, watcher = _page(browser)  # beyond the cap: told why, offered the lecture
        watcher.goto(f"{url}/train")
        watcher.get_by_text(FULL).wait_for()
        watcher.screenshot(path=str(shots / "cap_message.png"), full_page=True)
        watcher.get_by_role("button", name="Watch").first.click()
        watcher.get_by_text(VIEWER_LINE).wait_for()
        assert rid in watcher.url
        qctx, waiter = _page(browser)  # and another who waits in line
        waiter.goto(f"{url}/train")
        waiter.get_by_text("you are number 1 in line").wait_for()

        presenter.get_by_role("button", name="Pause").click()
        _until(presenter, "s[0] === 'paused'")
        reached = _settled(presenter)
        storage = pctx.storage_state()  # the presenter's browser, to come back later
        pctx.close(), wctx.close()  # the lecture's last viewers leave
        t0 = time.monotonic()
        waiter.get_by_role("button", name="Start").wait_for(timeout=(LEAVE + 60) * 1000)  # its own run at last
        got_slot = time.monotonic() - t0
        qctx.close()
        while _lecture_threads(proc.pid) and time.monotonic() - t0 < GRACE + 60:
            time.sleep(0.25)
        print(f"the waiting visitor got a run {got_slot:.1f} s after the lecture's viewers left; no lecture thread "
              f"(training or keeper) left {time.monotonic() - t0:.1f} s after the last tab closed")
        assert _lecture_threads(proc.pid) == 0
        assert time.monotonic() - t0 < 30 + 15  # 30 s is the aim; a loaded machine may add a few seconds
        assert store.load(rid)[0]["main"]["trainer"]["iteration"] == reached

        bctx, back = _page(browser, storage)  # the presenter opens the lecture's link again: it resumes
        back.goto(f"{url}/train?run={rid}")
        back.get_by_role("button", name="Start").wait_for()
        assert _state(back) == ("paused", reached)
        browser.close()
