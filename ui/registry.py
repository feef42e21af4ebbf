"""The lecture's runs on this server: the registry of live runs by id, the browser sessions viewing each,
the grace timer that ends an unseen run, and the main (ours) and ABP sessions of a run."""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, replace

import streamlit as st

from lvm.config import TrainConfig
from lvm.live.session import Session
from lvm.live.turns import process_turns
from lvm.presets import DEMO


class Sessions(dict):
    """The training sessions of one lecture's run, by name ("main", "abp"), shared by every tab showing its id."""

    def __init__(self, run_id: str):
        super().__init__()
        self.run_id, self.viewers, self.ending = run_id, 0, None

    def close_all(self) -> None:
        """Ends every thread without waiting for it."""
        for s in self.values():
            s.close()


_RUNS: dict[str, Sessions] = {}  # every run of this server process, by the id in its tabs' URL (?run=...)
_RUNS_LOCK = threading.Lock()
GRACE = 20.0  # seconds a run with no tab left lives on: a reload closes its session at once, then reattaches


@dataclass
class _Viewer:
    """One browser session's hold on a run: the run ends GRACE seconds after its last viewer's session does."""

    sessions: Sessions


def _end_if_unseen(ss: Sessions) -> None:
    with _RUNS_LOCK:
        if ss.viewers > 0 or _RUNS.get(ss.run_id) is not ss:
            return
        _RUNS.pop(ss.run_id)
    ss.close_all()


def _release(viewer: _Viewer) -> None:
    """Runs on the server's event loop when a browser session ends: it must not wait."""
    with _RUNS_LOCK:
        ss = viewer.sessions
        ss.viewers -= 1
        if ss.viewers == 0:
            ss.ending = threading.Timer(GRACE, _end_if_unseen, (ss,))
            ss.ending.daemon = True
            ss.ending.start()


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def _viewer(run_id: str) -> _Viewer:
    with _RUNS_LOCK:
        ss = _RUNS.setdefault(run_id, Sessions(run_id))
        ss.viewers += 1
        if ss.ending is not None:
            ss.ending.cancel()
            ss.ending = None
        return _Viewer(ss)


def sessions() -> Sessions:
    """The run this tab shows: the one its URL names (?run=ID: a reload or a second tab of the lecture
    reattaches to it), else a new one whose id goes into the URL. A run ends once every browser session
    that showed it has closed, plus GRACE seconds."""
    rid = st.session_state.get("run_id") or st.query_params.get("run", "")
    with _RUNS_LOCK:
        if rid not in _RUNS:
            rid = uuid.uuid4().hex[:10]
    ss = _viewer(rid).sessions
    st.session_state["run_id"] = rid
    if st.query_params.get("run") != rid:
        st.query_params["run"] = rid
    return ss


def main_session() -> Session:
    """This browser session's main run, built on first use with the demo config."""
    ss = sessions()
    if "main" not in ss:
        ss["main"] = Session(DEMO, turns=process_turns())
    st.session_state["session"], st.session_state["sessions"] = ss["main"], ss  # handles for tests; the cache owns them
    return ss["main"]


def warm_up() -> None:
    """Build (and drop) the demo's two sessions once, so that the Train view's first visit finds torch's lazy
    imports done (the first optimiser imports torch._dynamo: about 3 s) and the demo's data and levels cached."""
    Session(DEMO, turns=process_turns()), Session(abp_config(DEMO), turns=process_turns())


def abp_config(cfg: TrainConfig) -> TrainConfig:
    """ABP beside ours: the same data, seed and settings with alpha = 0 (no correction)."""
    return replace(cfg, method="abp", alpha=None)


def abp_session(on: bool) -> Session | None:
    """ABP trained beside the main run when `on` (built from the main run's config), else closed; the session."""
    ss, main = sessions(), main_session()
    if not on or main.cfg.method != "ours":
        if "abp" in ss:
            ss.pop("abp").close()
        return None
    if "abp" not in ss:
        ss["abp"] = Session(abp_config(main.cfg), turns=process_turns())
        ss["abp"].keep_pace(main)
        if main.state == "running":
            ss["abp"].start()
    return ss["abp"]


def runs() -> list[Session]:
    """The main run and, when it is on, ABP beside it: what Start, Pause, Step and Reset act on."""
    ss = sessions()
    return [main_session()] + ([ss["abp"]] if "abp" in ss else [])
