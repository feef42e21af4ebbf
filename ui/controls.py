"""The presenter's panel on the Train view (Start / Pause / Step / Reset, the live settings, the settings that
need a Reset, keyboard shortcuts), a viewer's line in its place, and what a visitor beyond the cap on runs sees
(projector mode is `ui.projector`: torch-free, for every page).

Shortcuts are Streamlit's own (`st.button(shortcut=...)`; not while typing in a field): Space starts or pauses,
S steps, Home resets (R is Streamlit's rerun). A viewer has no buttons, so no shortcut does anything for a viewer.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import streamlit as st

from lvm.config import TrainConfig
from lvm.data import MissingDataError
from lvm.live.session import Session
from ui import projection, registry, widgets

STABLE_S = 0.3  # Langevin steps above this drift far from the posterior on these models (and diverge near 2)
STEP_WAIT = 0.4  # seconds Step waits for its iteration before redrawing (a slower one shows at the next redraw)
RATES = [0.25, 0.5, 1.0, 2.0, 5.0]  # "refresh every (s)" choices
WAIT_EVERY = 3.0  # seconds between a waiting visitor's looks for a free slot
SHORTCUTS = {"start_pause": "Space", "step": "S", "reset": "Home"}  # Home: back to iteration 0 (R is Streamlit's)


@dataclass(frozen=True)
class Panel:
    """What the Train view draws with: the run's config, ABP beside it (or None), this browser's refresh rate and
    projection, and whether it presents the run."""

    cfg: TrainConfig
    abp: Session | None
    rate: float
    proj: str
    presenter: bool


def panel(s: Session) -> Panel:
    """The controls of run `s` for its presenter, or the viewer's line and its own refresh rate."""
    ss = registry.sessions()
    if not registry.is_presenter(ss):
        return _viewer(s, ss)
    _remember_presenter()
    cfg = s.cfg
    live = st.columns([1, 1, 1, 1, 1.4])  # the last holds "ABP beside" and its help, in full in projector mode too
    alpha = live[0].slider("alpha (Eq. 10)", 0.0, 1.0, cfg.alpha, 0.05, key="alpha", disabled=cfg.method != "ours")
    alpha = alpha if cfg.method == "ours" else cfg.alpha  # disabled, it may still hold ours' alpha: abp is alpha 0
    step_size = live[1].number_input("s, Langevin step", 0.001, 2.0, cfg.langevin.step_size, 0.01, format="%.3f",
                                     key="s")
    steps = live[2].slider("K, Langevin steps", 0, 100, cfg.langevin.steps, key="K")
    rate = live[3].select_slider("refresh every (s)", RATES, 1.0, key="rate",
                                 help="each redraw sends the newest positions (about 16 KB); the points glide between them")
    with_abp = live[4].toggle("ABP beside", "abp" in ss or s.view().iteration == 0, key="with_abp",
                              disabled=cfg.method != "ours",
                              help="ABP is alpha 0 (no OT correction): trained on the same data, seed and "
                                   "settings, drawn beside ours or on the same axes")
    abp = registry.abp_session(with_abp)
    if (alpha, step_size, steps) != (cfg.alpha, cfg.langevin.step_size, cfg.langevin.steps):
        changed = [f"{n} {x:g}" for n, x, y in (("alpha", alpha, cfg.alpha), ("s", step_size, cfg.langevin.step_size),
                                                ("K", steps, cfg.langevin.steps)) if x != y]
        st.session_state.setdefault(f"marks:{s.view().run}", []).append((s.view().iteration, ", ".join(changed)))
        cfg = s.update(alpha=alpha, step_size=step_size, steps=steps)  # live: from the next iteration on
        if abp is not None:
            abp.update(step_size=step_size, steps=steps)
    if step_size > STABLE_S:
        st.warning(f"s = {step_size:g} is far above the stable range (about 0.01 to {STABLE_S} here): the chains "
                   "overshoot, an iteration can take much longer, and training may diverge (it then rolls back).")
    new, proj = widgets.run_settings(cfg, alpha, step_size, steps)
    projection.set_projection_method(proj)
    _buttons(s, abp, new)
    return Panel(cfg, abp, rate, proj, True)


def _buttons(s: Session, abp: Session | None, new: TrainConfig | None) -> None:
    running = s.state == "running"
    b = st.columns(5)
    # Space is Start while the run stands and Pause while it trains (a shortcut belongs to one button at a time);
    # the same button is the highlighted one, so a glance at the projector tells whether the run trains
    if b[0].button("Start", type="secondary" if running else "primary", key="start",
                   shortcut=None if running else SHORTCUTS["start_pause"]):
        for r in registry.runs():
            r.start()
        st.rerun()  # Space moves to Pause
    if b[1].button("Pause", type="primary" if running else "secondary", key="pause",
                   shortcut=SHORTCUTS["start_pause"] if running else None):
        for r in registry.runs():
            r.pause()
        st.rerun()  # Space moves to Start
    if b[2].button("Step", key="step", shortcut=SHORTCUTS["step"],
                   help="one iteration: inference, correction when due, learning"):
        before, t_end = s.view().iteration, time.monotonic() + STEP_WAIT
        for r in registry.runs():
            r.step()
        while s.view().iteration == before and time.monotonic() < t_end:  # a quick step shows in this very redraw
            time.sleep(0.02)
    if b[3].button("Reset", key="reset", disabled=new is None, shortcut=SHORTCUTS["reset"]):
        try:
            with st.spinner("loading the data"), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                s.reset(new)
                if abp is not None:
                    abp.reset(registry.abp_config(new))
            st.session_state["data_warnings"] = sorted({str(w.message) for w in caught})
            st.rerun()  # redraw the settings from the new config: the "changed settings" warning goes
        except (MissingDataError, ValueError, OSError) as e:
            st.error(f"Cannot start this run: {e}")
    for w in st.session_state.get("data_warnings", []):  # e.g. a folder without a test split
        st.warning(w)
    _refit(s, b[4])
    keeper = registry.sessions().keeper
    if keeper is not None and keeper.error:
        st.warning(keeper.error)


def _refit(s: Session, where) -> None:
    if s.cfg.model.latent_dim > 2 and where.button("Refit projection", key="refit",
                                                   help="fit the 2-D projection again on the latents as they are now"):
        projection.forget_projection(f"main{s.view().run}")


def _viewer(s: Session, ss: registry.Sessions) -> Panel:
    """A viewer's line: the presenter controls the run; everything else (refresh rate, the other views) is its own."""
    cfg = s.cfg
    left, right = st.columns([4, 1])
    left.info(f"**The presenter controls this run** (Start, Pause, Step, Reset and its settings). Now: alpha "
              f"{cfg.alpha:g}, s {cfg.langevin.step_size:g}, K {cfg.langevin.steps}"
              f"{', ABP beside it' if 'abp' in ss else ''}. Everything else here is yours to explore.")
    rate = right.select_slider("refresh every (s)", RATES, 1.0, key="rate")
    _refit(s, right)
    return Panel(cfg, ss.get("abp"), rate, projection.projection_method(), False)


_KEY_JS = """
export default function({ data }) {
  if (data && data.name) {
    document.cookie = `${data.name}=${data.key}; path=/; max-age=${data.age}; SameSite=Strict`;
  }
}
"""


def _remember_presenter() -> None:
    """The presenter's key into its browser as a cookie (never into the URL), so that a reload, or the link opened
    again in this browser, still presents the run; sent once per browser session that created the run."""
    got = st.session_state.get("presenter_key")
    if got is None:
        return
    rid, key = got
    _key_component()(data={"name": registry.COOKIE + rid, "key": key, "age": registry.KEY_DAYS * 86400},
                     key="presenter_key_cookie")


@st.cache_resource(show_spinner=False)
def _key_component():
    return st.components.v2.component("lvm_presenter_key", js=_KEY_JS)


def full_house(ss: registry.Sessions) -> None:
    """What a visitor beyond the cap sees: why, the running lectures to watch, and a place in line that takes a
    run of its own as soon as one frees."""
    st.subheader("This server is training as many runs as it can")
    st.write(f"It trains at most **{registry.max_runs()}** run{'s' if registry.max_runs() > 1 else ''} at once "
             f"(each is ours with ABP beside it; set {registry.MAX_RUNS_ENV} to change it), so that the runs it has "
             "keep their speed. You can watch a running lecture, or wait here for a run of your own.")
    for other in registry.live_runs():
        v = other["main"].view()
        c = st.columns([4, 1])
        c[0].markdown(f"Run `{other.run_id}`: **{v.state}**, iteration {v.iteration}, {other.viewers} watching")
        if c[1].button("Watch", key=f"watch_{other.run_id}"):
            registry.watch(other.run_id)
            st.rerun()
    _wait(ss)


@st.fragment(run_every=WAIT_EVERY)
def _wait(ss: registry.Sessions) -> None:
    place, _ = registry.waiting()
    if registry.admitted(ss):
        st.rerun(scope="app")
    what = f"run {ss.run_id} to come back" if ss.saved else "a run of your own"
    st.info(f"Waiting for {what}: you are number {max(place, 1)} in line; this page checks every "
            f"{WAIT_EVERY:g} s and opens it as soon as a run ends.")
