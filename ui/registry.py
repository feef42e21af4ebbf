"""The lecture's runs on this server: the registry of live runs by id, who presents and who views each, the cap
on runs in memory, the grace timer that ends an unseen run, and the main (ours) and ABP sessions of a run.

- A run is ours with ABP beside it. The browser session that creates one is its presenter; the link it shares
  (?run=ID) opens the run as a viewer. The presenter's key goes to its browser as a cookie (ui/controls.py), and
  only its sha256 is kept here and in the run's file, so a reload (or a restarted server) knows the presenter
  and nothing on the projector shows the key.
- At most `max_runs()` runs are in memory at once ($LVM_MAX_RUNS, default one per two cores); a visitor beyond
  it waits in line or watches a running lecture (ui/controls.py says so).
- Every live run is kept on disk by a `lvm.live.store.Keeper` (on Pause, every minute while training); a run
  whose last viewer has gone is written once more and ends, and its link brings it back (after a restart too).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
import uuid
from dataclasses import replace

import streamlit as st

from lvm.config import TrainConfig
from lvm.fileio import CheckpointError
from lvm.live import store
from lvm.live.session import Session
from lvm.live.turns import process_turns
from lvm.presets import DEMO

MAX_RUNS_ENV = "LVM_MAX_RUNS"
GRACE = 15.0  # seconds a run with no viewer left lives on (a reload reattaches at once), then it is written and
#               ends: within 30 s of its last tab closing (a session's hold goes at the disconnect)
COOKIE = "lvm_presenter_"  # + run id: the presenter's key, in its browser only
KEY_DAYS = 7  # how long the presenter's browser keeps the key


def max_runs() -> int:
    """Runs this server keeps in memory (and trains) at once: $LVM_MAX_RUNS, else one per two cores."""
    env = os.environ.get(MAX_RUNS_ENV, "").strip()
    return max(1, int(env)) if env.isdigit() else max(1, (os.cpu_count() or 1) // 2)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Sessions(dict):
    """The training sessions of one lecture's run, by name ("main", "abp"), shared by every tab showing its id."""

    def __init__(self, run_id: str, presenter: str = ""):
        super().__init__()
        self.run_id, self.viewers, self.ending = run_id, 0, None
        self.presenter = presenter  # sha256 of the presenter's key ("" : nobody can present it)
        self.keeper: store.Keeper | None = None
        self.saved = store.exists(run_id)  # a file to go on from (a restart, or a run that ended unseen)
        self.build_lock = threading.Lock()
        self.reserved = False  # admitted under the cap, to be built

    def meta(self) -> dict:
        return {"presenter": self.presenter, "with_abp": "abp" in self}

    def close_all(self) -> None:
        """Ends every thread without waiting for it."""
        for s in self.values():
            s.close()


_RUNS: dict[str, Sessions] = {}  # every run of this server process, by the id in its tabs' URL (?run=...)
_RUNS_LOCK = threading.Lock()
_ENDED: dict[str, threading.Event] = {}  # runs being written and ended: set once their file is final
_LINE: dict[object, float] = {}  # holds of visitors waiting for a run of their own (first come, first served),
#                                  and when each last asked: one that stopped asking (left the page) drops out
LINE_STALE = 10.0  # seconds: the waiting page asks every few


class _Hold:
    """One browser session's hold on the run it shows (one at a time); the run ends GRACE seconds after its last
    hold is released or moved to another run."""

    def __init__(self):
        self.sessions: Sessions | None = None

    def attach(self, ss: Sessions) -> None:
        with _RUNS_LOCK:
            if self.sessions is ss:
                return
            self.detach_locked()
            ss.viewers += 1
            if ss.ending is not None:
                ss.ending.cancel()
                ss.ending = None
            self.sessions = ss

    def detach_locked(self) -> None:
        ss, self.sessions = self.sessions, None
        _LINE.pop(self, None)
        if ss is not None:
            ss.viewers -= 1
            if ss.viewers == 0:
                ss.ending = threading.Timer(GRACE, _end_if_unseen, (ss,))
                ss.ending.daemon = True
                ss.ending.start()


def _end_if_unseen(ss: Sessions) -> None:
    """On a timer thread: stop the run's threads, write its file a last time, and drop it."""
    with _RUNS_LOCK:
        if ss.viewers > 0 or _RUNS.get(ss.run_id) is not ss:
            return
        _RUNS.pop(ss.run_id)
        done = _ENDED[ss.run_id] = threading.Event()
    try:
        for s in list(ss.values()):
            s.stop(timeout=20.0)
        if ss.keeper is not None:
            ss.keeper.close()
        ss.close_all()
    finally:
        done.set()
        with _RUNS_LOCK:
            _ENDED.pop(ss.run_id, None)


def _release(hold: _Hold) -> None:
    """Runs on the server's event loop when a browser session ends: it must not wait."""
    with _RUNS_LOCK:
        hold.detach_locked()


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def _hold() -> _Hold:
    return _Hold()


def _known(rid: str) -> Sessions | None:
    """The run `rid` if it is live or on disk (a run still being written is waited for), else None."""
    with _RUNS_LOCK:
        ss, ending = _RUNS.get(rid), _ENDED.get(rid)
    if ss is None and ending is not None:
        ending.wait(30.0)
    if ss is not None or not store.exists(rid):
        return ss
    try:
        meta = store.load(rid)[1]
    except CheckpointError:
        return None
    with _RUNS_LOCK:
        return _RUNS.setdefault(rid, Sessions(rid, meta.get("presenter", "")))


def sessions() -> Sessions:
    """The run this tab shows: the one it shows already, else the one its URL names (?run=ID: a reload or a
    lecture's link; a run that ended or predates a restart comes back from its file), else a new one that this
    browser session presents, whose id goes into the URL."""
    rid = st.session_state.get("run_id") or st.query_params.get("run", "")
    ss = _known(rid) if rid else None
    if ss is None:
        key = secrets.token_urlsafe(18)
        rid = uuid.uuid4().hex[:10]
        with _RUNS_LOCK:
            ss = _RUNS[rid] = Sessions(rid, key_hash(key))
        st.session_state["presenter_key"], st.session_state[f"presents:{rid}"] = (rid, key), True
    _hold().attach(ss)
    st.session_state["run_id"] = rid
    if st.query_params.get("run") != rid:
        st.query_params["run"] = rid
    return ss


def is_presenter(ss: Sessions | None = None) -> bool:
    """Whether this browser session presents the run it shows: it created it, or its browser holds the key."""
    ss = ss or sessions()
    flag = f"presents:{ss.run_id}"
    if flag not in st.session_state:
        key = st.context.cookies.get(COOKIE + ss.run_id)
        key = key if isinstance(key, str) else ""  # none (or, under AppTest, not a browser's cookie)
        st.session_state[flag] = bool(key and ss.presenter) and hmac.compare_digest(key_hash(key), ss.presenter)
    return st.session_state[flag]


def watch(run_id: str) -> None:
    """Show run `run_id` from now on (as its viewer, unless this browser holds its key)."""
    st.session_state["run_id"] = run_id
    st.query_params["run"] = run_id


def live_runs() -> list[Sessions]:
    """The runs in memory (with a main session), most watched first."""
    with _RUNS_LOCK:
        return sorted((ss for ss in _RUNS.values() if "main" in ss), key=lambda ss: -ss.viewers)


def admitted(ss: Sessions) -> bool:
    """Whether run `ss` may be built now: under the cap, counting runs in memory that someone shows, and after
    the visitors who waited longer; else this session waits in line."""
    hold, now = _hold(), time.monotonic()
    with _RUNS_LOCK:
        if "main" in ss or ss.reserved:
            return True
        for h in [h for h, seen in _LINE.items() if now - seen > LINE_STALE]:
            del _LINE[h]
        used = sum(1 for r in _RUNS.values() if ("main" in r or r.reserved) and r.viewers > 0)
        _LINE[hold] = now
        if used + list(_LINE).index(hold) < max_runs():
            del _LINE[hold]
            ss.reserved = True  # until it is built: a second look must not count it against itself
            return True
        return False


def waiting() -> tuple[int, int]:
    """(this session's place in the line, 1 first; the runs in memory)."""
    with _RUNS_LOCK:
        hold = _hold()
        return (list(_LINE).index(hold) + 1 if hold in _LINE else 0), sum(1 for r in _RUNS.values() if "main" in r)


def main_session() -> Session:
    """The main run this tab shows, built on first use (with the demo config, or from its file); beyond the cap,
    the page says so (ui/controls.py) and stops here."""
    ss = sessions()
    if "main" not in ss:
        if not admitted(ss):
            from ui import controls  # it imports this module

            controls.full_house(ss)
            st.stop()
        _build(ss)
    st.session_state["session"], st.session_state["sessions"] = ss["main"], ss  # handles for tests; the cache owns them
    return ss["main"]


def _build(ss: Sessions) -> None:
    """The run's sessions, from its file when it has one, and the Keeper that writes it."""
    with ss.build_lock:
        if "main" in ss:
            return
        main = abp = None
        if ss.saved:
            try:  # e.g. its image folder is gone or changed since (MissingDataError, CheckpointError)
                saved = store.load(ss.run_id)[0]
                main = Session(saved["main"]["cfg"], turns=process_turns())
                main.restore(saved["main"])
                if "abp" in saved:
                    abp = Session(saved["abp"]["cfg"], turns=process_turns())
                    abp.restore(saved["abp"])
                    abp.keep_pace(main)
            except (ValueError, OSError, RuntimeError) as e:
                st.warning(f"Run {ss.run_id} could not be brought back ({e}); a new run starts from the demo.")
                main = abp = None
        main = main or Session(DEMO, turns=process_turns())
        if abp is not None:
            ss["abp"] = abp
        ss["main"] = main
        ss.keeper = store.Keeper(ss.run_id, lambda: ss, ss.meta)
        if not ss.saved:
            store.sweep()  # a new run: the old ones past their retention go


def warm_up() -> None:
    """Build (and drop) the demo's two sessions once, so that the Train view's first visit finds torch's lazy
    imports done (the first optimiser imports torch._dynamo: about 3 s) and the demo's data and levels cached."""
    Session(DEMO, turns=process_turns()), Session(abp_config(DEMO), turns=process_turns())


def abp_config(cfg: TrainConfig) -> TrainConfig:
    """ABP beside ours: the same data, seed and settings with alpha = 0 (no correction)."""
    return replace(cfg, method="abp", alpha=None)


def abp_session(on: bool) -> Session | None:
    """ABP trained beside the main run when `on` (built from the main run's config), else closed; the session.
    Only its presenter turns it on or off: a viewer gets the run's as it is."""
    ss, main = sessions(), main_session()
    if not is_presenter(ss):
        return ss.get("abp")
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
