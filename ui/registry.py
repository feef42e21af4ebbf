"""Streamlit glue shared by the pages: per-browser sessions, cached models, small widgets.

Only this module and the pages import Streamlit; the training thread lives in
``lvm.session`` and never calls ``st.*``.
"""
from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.pool
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from torch import nn

import live_pictures
from lvm import data as datasets, pretrained
from lvm.checkpoint import CheckpointError
from lvm.config import (DATA_SETS, METHODS, OT_SOLVERS, DataConfig, LangevinConfig, ModelConfig,
                        TrainConfig, default_arch)
from lvm.projection import Projection
from lvm.session import DEMO, Session

LIVE = "live training run"


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
        ss["main"] = Session(DEMO)
    st.session_state["session"], st.session_state["sessions"] = ss["main"], ss  # handles for tests; the cache owns them
    return ss["main"]


def warm_up() -> None:
    """Build (and drop) the demo's two sessions once, so that the Train view's first visit finds torch's lazy
    imports done (the first optimiser imports torch._dynamo: about 3 s) and the demo's data and levels cached;
    and load the demo's test split, which the Reconstruct view's first visit would otherwise wait for."""
    Session(DEMO), Session(abp_config(DEMO))
    test_images(DEMO.data, 1)


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
        ss["abp"] = Session(abp_config(main.cfg))
        ss["abp"].keep_pace(main)
        if main.state == "running":
            ss["abp"].start()
    return ss["abp"]


def runs() -> list[Session]:
    """The main run and, when it is on, ABP beside it: what Start, Pause, Step and Reset act on."""
    ss = sessions()
    return [main_session()] + ([ss["abp"]] if "abp" in ss else [])


@st.cache_resource(show_spinner="loading the model")
def load_pretrained(name: str) -> tuple[TrainConfig, nn.Module, dict]:
    """(config, generator, checkpoint state) of pretrained/NAME, hash-checked, shared by all sessions."""
    entry = pretrained.find(name)
    if entry is None:
        raise CheckpointError(f"pretrained/{name} is not there")
    return entry.load()


@st.cache_resource(show_spinner="loading your detector", max_entries=8)
def _own_detector(folder: str, version: int) -> tuple[TrainConfig, nn.Module, dict, int]:
    from lvm.checkpoint import load_model
    from lvm.commands import REFERENCE, read_reference

    cfg, gen, _ = load_model(Path(folder) / "checkpoint.pt")
    return cfg, gen, read_reference(Path(folder) / REFERENCE), version


def load_detector(folder: str) -> tuple[TrainConfig, nn.Module, dict, int]:
    """(config, generator, reference, version) of the run folder `lvm anomaly --data folder --out FOLDER` wrote,
    cached until its checkpoint changes; the version (the checkpoint's mtime in ns) changes with it.

    Raises:
        ValueError: the folder, its checkpoint.pt or its reference.json is missing, or the file is not a reference.
        CheckpointError: the checkpoint cannot be read.
    """
    from lvm.commands import REFERENCE

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ValueError(f"{folder}: no such folder")
    for name in ("checkpoint.pt", REFERENCE):
        if not (path / name).is_file():
            raise ValueError(f"{folder} has no {name}: train a detector there with `python -m lvm anomaly --data "
                             f"folder --root YOUR_NORMAL_IMAGES --out {folder}`")
    return _own_detector(str(path.resolve()), (path / "checkpoint.pt").stat().st_mtime_ns)


@st.cache_data(show_spinner="loading test images")
def test_images(data: DataConfig, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n seeded test images (N, C, H, W) of `data` (its class filter kept, its limit dropped) and labels."""
    test = datasets.load(replace(data, limit=0), "test")
    idx = np.random.RandomState(seed).permutation(len(test))[:n]
    return test.x[idx].numpy(), test.y[idx].numpy()


@dataclass(frozen=True)
class Model:
    """A generator the pages can use: where it came from, its config, and a version for caching."""

    label: str
    cfg: TrainConfig
    generator: nn.Module
    version: int
    name: str = ""              # the pretrained/ entry, "" for the live run


def pick_model(key: str, only: tuple[str, ...] = ()) -> Model | None:
    """A selectbox over the live run and the pretrained models (or just `only`); None when there is none."""
    names = [e.name for e in pretrained.available() if not only or e.name in only]
    s = sessions().get("main")
    options = ([LIVE] if s is not None and s.view().iteration > 0 and not only else []) + names
    if not options:
        st.info("No model yet: train one on the Train page, or run `bash scripts/make_pretrained.sh` "
                "to fill pretrained/.")
        return None
    choice = st.selectbox("Model", options, key=key)
    if choice == LIVE:
        cfg, gen, it = s.model()
        return Model(f"{LIVE} at iteration {it}", cfg, gen, it)
    try:
        cfg, gen, state = load_pretrained(choice)
    except CheckpointError as e:
        st.error(str(e))
        return None
    return Model(f"pretrained/{choice}", cfg, gen, -1, choice)


def axis_limit(key: str, *clouds: np.ndarray, floor: float = 4.0) -> float:
    """A half-width that covers 99.5 % of the points and only ever grows for `key` (fixed axes across frames)."""
    now = max([floor] + [float(np.quantile(np.abs(c), 0.995)) * 1.1 for c in clouds if c is not None and len(c)])
    lim = max(now, st.session_state.get(f"lim:{key}", floor))
    st.session_state[f"lim:{key}"] = float(np.ceil(lim))
    return float(np.ceil(lim))


def picture(slot: str, version: tuple, draw: Callable[[], bytes], every: float = 0.0) -> bytes:
    """The PNG `draw()` makes, kept in this browser session under `slot` and drawn again only when `version`
    changes (between iterations the same bytes go out), at most once per `every` seconds of the server's clock
    unless version[0] (the run) changes."""
    cached = st.session_state.get(f"picture:{slot}")
    now = time.monotonic()
    if cached is None or (cached[0] != version and (version[0] != cached[0][0] or now - cached[2] >= every)):
        cached = (version, draw(), now)
        st.session_state[f"picture:{slot}"] = cached
    return cached[1]


def clouds(slot: str, lim: float, classes: tuple[int, ...], with_abp: bool, prior: np.ndarray | None = None,
           titles: tuple[str, str] = ("ours", "ABP"), ghost_label: str | None = "before the last correction",
           line_label: str | None = "moved by Eq. 10") -> live_pictures.Clouds:
    """This browser session's `live_pictures.Clouds` under `slot` (a Figure is not thread-safe), made again
    when what its background shows changes (its `key`, which a picture's version should hold)."""
    args = (lim, classes, with_abp, prior, titles, ghost_label, line_label)
    got = st.session_state.get(f"clouds:{slot}")
    if got is None or got.key != live_pictures.Clouds.key_of(*args):
        got = st.session_state[f"clouds:{slot}"] = live_pictures.Clouds(*args)
    return got


def projected_prior(proj: Projection) -> np.ndarray | None:
    """800 fixed prior draws through `proj` for the clouds' background, or None when its first two axes are
    exactly N(0, I_2) (the circles say it)."""
    return None if proj.exact_prior else proj.transform(np.random.RandomState(0).standard_normal((800, proj.d)))


def class_list(labels: np.ndarray) -> tuple[int, ...]:
    """The classes to colour by (digit labels), or () when there are too many to tell apart."""
    classes = np.unique(labels)
    return tuple(int(c) for c in classes) if len(classes) <= 10 else ()


def set_projection_method(method: str) -> None:
    """The projection for d > 2 chosen on the Train view, for every view that draws latents."""
    st.session_state["projection_method"] = method


def projection_method() -> str:
    return st.session_state.get("projection_method", "pca")


def forget_projection(key: str) -> None:
    """The next `projection` call for run `key` fits again."""
    for slot in [k for k in st.session_state if str(k).startswith(f"proj:{key}:")]:
        del st.session_state[slot]


@functools.cache
def _fitter() -> multiprocessing.pool.Pool:
    """One process for UMAP fits: its compiled code holds the GIL for seconds, which would stall the server."""
    return multiprocessing.get_context("spawn").Pool(1)


def stop_fits() -> None:
    """End the UMAP process, abandoning a fit in flight (at shutdown, and in tests)."""
    if _fitter.cache_info().currsize:
        _fitter().terminate()
        _fitter.cache_clear()
        for slot in [k for k, v in st.session_state.items() if isinstance(v, multiprocessing.pool.AsyncResult)]:
            del st.session_state[slot]


def _fit(method: str, z: np.ndarray) -> Projection:
    return Projection(method).fit(z)


def projection(key: str, method: str, fit_on: np.ndarray) -> Projection:
    """The projection for run `key`, fitted once on `fit_on` and reused for every later frame.

    PCA fits at once. UMAP fits in a separate process while the page goes on with PCA (and says so); it is
    used from the first redraw after the fit is done. A failed fit is reported and PCA stays.
    """
    slot = f"proj:{key}:{method}"
    got = st.session_state.get(slot)
    if got is None:
        got = _fitter().apply_async(_fit, (method, np.array(fit_on))) if method == "umap" else _fit(method, fit_on)
        st.session_state[slot] = got
    if isinstance(got, multiprocessing.pool.AsyncResult):
        if not got.ready():
            st.caption("Fitting the UMAP projection in the background (it can take a minute); PCA until then.")
            return projection(key, "pca", fit_on)
        try:
            got = got.get()
        except Exception as e:  # noqa: BLE001 - whatever UMAP raised, the page keeps PCA and says why
            got = e
        st.session_state[slot] = got
    if isinstance(got, Exception):
        st.warning(f"The UMAP projection could not be fitted ({type(got).__name__}: {got}); showing PCA.")
        return projection(key, "pca", fit_on)
    return got


def explain(markdown: str, *latex: str) -> None:
    """The "what am I seeing" box beside a view: a few sentences and the equations it shows."""
    with st.expander("What am I seeing?", expanded=False):
        st.markdown(markdown)
        for eq in latex:
            st.latex(eq)


def upscale(img: np.ndarray, side: int = 112) -> np.ndarray:
    """(C, H, W) in [0, 1] -> a uint8 picture `side` pixels wide, nearest neighbours (what the model sees)."""
    t = torch.from_numpy(np.asarray(img, dtype=np.float32))[None]
    big = torch.nn.functional.interpolate(t, size=(side, side), mode="nearest")[0]
    a = (big.clamp(0, 1) * 255).round().byte().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def run_settings(cfg: TrainConfig, alpha: float, step_size: float, steps: int) -> tuple[TrainConfig | None, str]:
    """The settings that need a Reset, in an expander: (the config they describe or None if invalid, projection)."""
    with st.expander("Data, model and schedule (apply with Reset)"):
        c = st.columns(4)
        name = c[0].selectbox("data", DATA_SETS, DATA_SETS.index(cfg.data.name), key="data")
        classes = c[1].multiselect("classes (none = all)", list(range(10)), list(cfg.data.classes), key="classes")
        root = c[2].text_input("image folder (folder) or SVHN root (svhn)", cfg.data.root, key="root")
        limit = c[3].number_input("images (0 = all)", 0, 70000, cfg.data.limit, 500, key="limit")
        c = st.columns(4)
        d = c[0].number_input("latent size d", 1, 128, cfg.model.latent_dim, key="d")
        method = c[1].radio("method", METHODS, METHODS.index(cfg.method), key="method", horizontal=True)
        solver = c[2].selectbox("OT solver", OT_SOLVERS, OT_SOLVERS.index(cfg.ot.solver), key="solver")
        seed = c[3].number_input("seed", 0, 10_000, cfg.seed, key="seed")
        c = st.columns(4)
        every = c[0].number_input("L, iterations between corrections", 1, 10_000, cfg.ot_every, key="L")
        learn = c[1].number_input("L2, learning steps", 1, 20, cfg.learn_steps, key="L2")
        sigma = c[2].number_input("sigma", 0.01, 2.0, cfg.langevin.sigma, 0.05, key="sigma")
        proj = c[3].radio("projection (d > 2)", ["pca", "umap"], key="proj", horizontal=True)
        try:
            new = replace(cfg, method=method, alpha=0.0 if method == "abp" else alpha, ot_every=int(every),
                          learn_steps=int(learn), seed=int(seed),
                          data=DataConfig(name, tuple(classes), root, limit=int(limit)),
                          model=ModelConfig(int(d), default_arch(int(d))),
                          langevin=LangevinConfig(int(steps), float(step_size), float(sigma)), ot=replace(cfg.ot, solver=solver))
        except ValueError as e:
            new = None
            st.error(f"These settings are not valid: {e}")
        if new is not None and new != cfg:
            st.warning("Changed settings take effect when you press Reset.")
    return new, proj
