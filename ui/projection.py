"""The plane latents with d > 2 are drawn on, per run and browser session: PCA at once, UMAP in a worker process.

UMAP's fit and its transform of new points are compiled code that holds the GIL for seconds to minutes on two
busy cores (`python -m benchmarks.app.umap_worker`), so both run in one worker process per run, a fresh interpreter that imports only lvm.projection (a
`spawn` pool would import the app's script as its main module and die at `nav.title`). The views show the
newest points the worker has placed and ask it for the next ones; the server never imports umap. The same
worker places a correction's clouds and a pinned point's chain path on the UMAP plane (`place_more`), each in
its own queue, so that the live clouds never wait behind them for more than one transform.
"""
from __future__ import annotations

import concurrent.futures
import functools
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st

import lvm
from lvm.projection import Projection

WORKER = r"""
import os, pickle, sys
out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)  # anything the libraries print goes to stderr, never into the answers
os.nice(5)
from lvm.projection import Projection
proj = None
while True:
    try:
        msg = pickle.load(sys.stdin.buffer)
    except EOFError:
        break
    try:
        if msg[0] == "fit":
            proj = Projection(msg[1]).fit(msg[2])
            res = proj.transform(msg[3])
        else:
            names, arrays = list(msg[1]), list(msg[1].values())
            xy = proj.transform(np.concatenate(arrays)) if arrays else None
            cuts = np.cumsum([len(a) for a in arrays])[:-1]
            res = dict(zip(names, np.split(xy, cuts))) if arrays else {}
    except Exception as e:  # noqa: BLE001 - the server shows it and keeps PCA
        res = RuntimeError(f"{type(e).__name__}: {e}")
    pickle.dump(res, out)
    out.flush()
""".replace("import os, pickle, sys", "import os, pickle, sys\nimport numpy as np", 1)
PRIOR_N = 800


def run_name(key: str) -> str:
    """Which run a projection key belongs to, for messages: "ours (run 2)" for "main2"."""
    return f"ours (run {key[4:]})" if key.startswith("main") else key


def prior_draws(d: int) -> np.ndarray:
    return np.random.RandomState(0).standard_normal((PRIOR_N, d)).astype(np.float32)


def projected_prior(proj: Projection) -> np.ndarray | None:
    """PRIOR_N fixed prior draws through `proj` for the clouds' background, or None when its first two axes are
    exactly N(0, I_2) (the circles say it)."""
    return None if proj.exact_prior else proj.transform(prior_draws(proj.d))


def set_projection_method(method: str) -> None:
    """The projection for d > 2 chosen on the Train view, for every view that draws latents."""
    st.session_state["projection_method"] = method


def projection_method() -> str:
    return st.session_state.get("projection_method", "pca")


def forget_projection(key: str) -> None:
    """The next `projection` or `place` for run `key` fits again."""
    for slot in [k for k in st.session_state if str(k).startswith(f"proj:{key}:")]:
        got = st.session_state.pop(slot)
        if isinstance(got, Worker):
            got.close()


@functools.cache
def _waiter() -> concurrent.futures.ThreadPoolExecutor:
    """Threads that wait on the worker processes (they hold no GIL while they wait)."""
    return concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="umap-worker")


_WORKERS: set[Worker] = set()


class Worker:
    """One worker process holding one UMAP fit: fitted once (with the prior's image), then transforms on
    request. `latest` never waits: it returns the newest arrays placed so far and asks for newer ones."""

    def __init__(self, method: str, fit_on: np.ndarray):
        root = os.path.dirname(os.path.dirname(os.path.abspath(lvm.__file__)))
        env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        self.lock = threading.Lock()
        self.method = method
        fit = np.asarray(fit_on, np.float32)
        self.fitted = _waiter().submit(self._call, ("fit", method, fit, prior_draws(fit.shape[1])))
        self.pending: dict[tuple, concurrent.futures.Future | None] = {}
        self.shown: dict[tuple, tuple[object, dict]] = {}
        self.error: Exception | None = None
        _WORKERS.add(self)

    def _call(self, msg: tuple):
        with self.lock:
            try:
                pickle.dump(msg, self.proc.stdin)
                self.proc.stdin.flush()
                out = pickle.load(self.proc.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as e:
                raise RuntimeError(f"the {self.method} worker ended (exit code {self.proc.poll()})") from e
        if isinstance(out, Exception):
            raise out
        return out

    def ready(self) -> bool:
        """Fitted (or failed: see `error`)."""
        if self.fitted.done() and self.error is None and self.fitted.exception() is not None:
            self.error = self.fitted.exception()
        return self.fitted.done()

    def prior(self) -> np.ndarray:
        return self.fitted.result()

    def latest(self, version, arrays: dict[str, np.ndarray | None]) -> tuple[object, dict] | None:
        """(version, name -> (n, 2)) of the newest request for these names done, or None; asks for `version`
        when no request for these names is in flight. Each set of names (the live clouds, the replay) has its
        own queue of one."""
        who = tuple(arrays)
        pending, shown = self.pending.get(who), self.shown.get(who)
        if pending is not None and pending.done():
            try:
                shown = self.shown[who] = pending.result()
            except Exception as e:  # noqa: BLE001 - shown as a warning, PCA stays
                self.error = e
            pending = self.pending[who] = None
        if pending is None and self.error is None and (shown is None or shown[0] != version):
            arrays = {k: np.asarray(a, np.float32) for k, a in arrays.items() if a is not None}
            self.pending[who] = _waiter().submit(lambda: (version, self._call(("transform", arrays))))
        return shown

    def close(self) -> None:
        self.proc.kill()
        _WORKERS.discard(self)


def stop_fits() -> None:
    """End every UMAP worker, abandoning the fits in flight (at shutdown, and in tests)."""
    for w in list(_WORKERS):
        w.close()
    for slot in [k for k, v in st.session_state.items() if isinstance(v, Worker)]:
        del st.session_state[slot]


def projection(key: str, method: str, fit_on: np.ndarray) -> Projection:
    """The linear projection (PCA) for run `key`, fitted once on `fit_on` and reused for every later frame."""
    slot = f"proj:{key}:pca"
    if slot not in st.session_state:
        st.session_state[slot] = Projection("pca").fit(fit_on)
    return st.session_state[slot]


@dataclass
class Placed:
    """Latents placed on the plane: `xy` by name, what placed them, and for a linear plane (d = 2 or PCA) the
    transform of any further array (None for UMAP, whose plane stands for no one latent per point)."""

    xy: dict[str, np.ndarray | None]
    method: str                              # "identity", "first two coordinates", "pca" or "umap"
    prior: np.ndarray | None                 # the prior's image where it is not exactly N(0, I_2)
    transform: Callable[[np.ndarray], np.ndarray] | None
    version: object = None                   # for UMAP: the version of the arrays shown (they lag)


def place(key: str, method: str, fit_on: np.ndarray | None, arrays: dict[str, np.ndarray | None],
          version=None) -> Placed:
    """The plane for run `key` and these (n, d) arrays: d = 2 as is; before a frame to fit on (`fit_on` None)
    the first two coordinates (exactly N(0, I_2) under the prior); PCA at once; UMAP from its worker, PCA
    (and a caption saying so) until the worker has placed a first set of points."""
    d = next(a for a in arrays.values() if a is not None).shape[1]
    as_is = lambda z: np.asarray(z, np.float32)  # noqa: E731
    if d == 2:
        return Placed({k: None if a is None else as_is(a) for k, a in arrays.items()}, "identity", None, as_is)
    if fit_on is None:
        first = lambda z: np.asarray(z, np.float32)[:, :2]  # noqa: E731
        return Placed({k: None if a is None else first(a) for k, a in arrays.items()}, "first two coordinates",
                      None, first)
    pca = projection(key, "pca", fit_on)
    linear = Placed({k: None if a is None else pca.transform(a) for k, a in arrays.items()}, "pca", None,
                    pca.transform)
    if method != "umap":
        return linear
    slot = f"proj:{key}:umap"
    w = st.session_state.get(slot)
    if w is None:
        w = st.session_state[slot] = Worker("umap", fit_on)
    shown = w.latest(version, arrays) if w.ready() and w.error is None else None
    if w.error is not None:
        st.warning(f"{run_name(key)}: the UMAP projection failed ({type(w.error).__name__}: {w.error}); "
                   "showing PCA.")
        return linear
    if shown is None:
        st.caption(f"{run_name(key)}: fitting the UMAP projection in a background process (it can take a few "
                   "minutes on a busy machine); PCA until then.")
        return linear
    return Placed({k: shown[1].get(k) for k in arrays}, "umap", w.prior(), None, shown[0])


def place_more(key: str, version, arrays: dict[str, np.ndarray]) -> tuple[object, dict[str, np.ndarray]] | None:
    """Further arrays (the same names every call: a correction's clouds, a chain's path) on run `key`'s UMAP
    plane: the newest set placed so far, (its version, name -> (n, 2)), possibly of an older version; None before
    the first is placed, and where run `key` has no fitted UMAP worker (PCA: use `Placed.transform`). Never
    waits: the worker places `version` next when it is not the one shown."""
    w = st.session_state.get(f"proj:{key}:umap")
    if not isinstance(w, Worker) or not w.ready() or w.error is not None:
        return None
    return w.latest(version, arrays)
