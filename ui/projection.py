"""The projection of latents with d > 2 onto the drawn plane, per run and browser session: PCA at once, UMAP
fitted in a worker process (its compiled code holds the GIL for seconds, which would stall the server)."""
from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.pool

import numpy as np
import streamlit as st

from lvm.projection import Projection


def projected_prior(proj: Projection) -> np.ndarray | None:
    """800 fixed prior draws through `proj` for the clouds' background, or None when its first two axes are
    exactly N(0, I_2) (the circles say it)."""
    return None if proj.exact_prior else proj.transform(np.random.RandomState(0).standard_normal((800, proj.d)))


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
