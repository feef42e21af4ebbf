"""The run registry (ui/registry.py) under Streamlit's AppTest: who presents a run and who views it, a run that
ends when no tab shows it and comes back from its link, and the cap's setting. Real Streamlit, real MNIST.

AppTest gives every test one browser-session id and no cookies, so two browsers (and the cap between them) are
tested in Chromium (tests/test_lecture_browser.py); here a fresh AppTest is a fresh session state: a second
visitor without the presenter's key."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lvm.live import store
from ui import registry, warmup

APP = str(Path(__file__).resolve().parent.parent / "app.py")
VIEWER_LINE = "The presenter controls this run"


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(store.DIR_ENV, str(tmp_path))
    return tmp_path


def _train(run: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if run is not None:
        at.query_params["run"] = run
    at.run()
    warmup.join()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _viewer_line(at: AppTest) -> bool:
    return any(VIEWER_LINE in i.value for i in at.info)


def test_the_cap_is_one_run_per_two_cores_unless_set(monkeypatch) -> None:
    monkeypatch.delenv(registry.MAX_RUNS_ENV, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert registry.max_runs() == 4
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert registry.max_runs() == 1
    monkeypatch.setenv(registry.MAX_RUNS_ENV, "3")
    assert registry.max_runs() == 3
    monkeypatch.setenv(registry.MAX_RUNS_ENV, "lots")  # not a number: the default
    assert registry.max_runs() == 1


@pytest.mark.slow
def test_the_creator_presents_and_its_link_opens_a_viewer_without_controls(runs_dir, wait_until) -> None:
    at = _train()
    rid = at.session_state["run_id"]
    assert at.query_params["run"] in (rid, [rid]) and not _viewer_line(at)
    at.button(key="step").click().run()
    s = at.session_state["session"]
    wait_until(lambda: s.view().iteration == 1)
    assert at.button(key="start").proto.shortcut and at.button(key="step").proto.shortcut  # Space, S

    other = _train(rid)  # the link in another browser: no key
    assert other.session_state["run_id"] == rid and other.session_state["session"] is s
    assert _viewer_line(other)
    for key in ("start", "pause", "step", "reset", "alpha", "s", "K", "with_abp", "d"):
        assert not [w for w in other.get("button") + other.get("slider") + other.get("number_input")
                    + other.get("toggle") if getattr(w, "key", None) == key], key
    assert other.select_slider(key="rate")  # its own refresh rate
    s.stop()


@pytest.mark.slow
def test_a_run_no_tab_shows_is_written_and_ends_and_its_link_brings_it_back(runs_dir, monkeypatch, wait_until) -> None:
    monkeypatch.setattr(registry, "GRACE", 0.5)
    at = _train()
    rid, s = at.session_state["run_id"], at.session_state["session"]
    for n in (1, 2):
        at.button(key="step").click().run()
        wait_until(lambda: s.view().iteration == n and s.view().busy == 0)
    _train()  # this browser session moves to a new run of its own: the first has no tab left
    # out of the registry, then written at the iteration it reached (the write follows its thread's end)
    wait_until(lambda: rid not in [r.run_id for r in registry.live_runs()] and store.exists(rid)
               and store.load(rid)[0]["main"]["trainer"]["iteration"] == 2, timeout=30)
    s.step()  # ended for good: its session is closed and starts no thread again
    time.sleep(1.0)
    assert s.view().iteration == 2

    back = _train(rid)  # its link, opened again: the run from its file, at the iteration it reached
    v = back.session_state["session"].view()
    assert back.session_state["run_id"] == rid and (v.state, v.iteration) == ("paused", 2)
    assert _viewer_line(back)  # the link without the presenter's key: a viewer
    assert "abp" in back.session_state["sessions"]  # ABP beside it, as it was


@pytest.mark.slow
def test_a_link_to_no_run_starts_a_run_of_ones_own(runs_dir) -> None:
    for bad in ("0123456789", "../../etc"):  # no such run; not a run id at all
        at = _train(bad)
        assert at.session_state["run_id"] != bad and at.button(key="start") and not _viewer_line(at)
