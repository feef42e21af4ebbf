"""The explorer's Python side: what a redraw sends (and its size in bytes), the clicks' answers (decode a point
of the plane, pick a point of the cloud) from a live session's generator snapshot, the fit curves, and the
projection worker that never imports the app. The browser side: tests/test_explorer_browser.py."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from lvm.config import DataConfig, ModelConfig
from lvm.live.session import Session
from lvm.presets import DEMO
from ui import projection
from ui.components import latent_cloud as lc
from ui.components.latent_cloud import payloads

SMALL = replace(DEMO, data=DataConfig("mnist", (0, 1), limit=400))


def test_a_packet_round_trips_and_a_live_redraw_sends_8000_bytes_of_positions_per_run() -> None:
    rng = np.random.RandomState(0)
    ours, abp = rng.randn(1000, 2), rng.randn(1000, 2).astype(np.float32)
    packet = lc.pack({"mode": "live", "token": "t"}, {"z0": ours, "z1": abp, "none": None, "png": b"\x89PNG12345"})
    header, blobs = lc.unpack(packet)
    assert header["mode"] == "live" and set(blobs) == {"z0", "z1", "png"}
    assert blobs["z0"].dtype == np.float32 and np.allclose(blobs["z0"].reshape(-1, 2), ours, atol=1e-6)
    assert bytes(blobs["png"]) == b"\x89PNG12345"
    assert header["blobs"]["z0"][1] == header["blobs"]["z1"][1] == 1000 * 2 * 4  # float32 (x, y) per point
    assert len(packet) < 2 * 8000 + 400  # two runs' positions and a short header: no picture of a cloud
    assert all(off % 4 == 0 for off, _, _ in header["blobs"].values())  # Float32Array needs 4-byte alignment


def test_the_sprite_sheet_holds_every_thumbnail_where_cloud_js_looks_for_it() -> None:
    from PIL import Image
    import io

    images = np.random.RandomState(1).rand(45, 1, 28, 28).astype(np.float32)
    sheet, layout = lc.sprite(images, cols=10)
    pic = np.asarray(Image.open(io.BytesIO(sheet)))
    assert pic.shape == (5 * 28, 10 * 28) and layout == {"cols": 10, "w": 28, "h": 28}
    i = 37
    r, q = divmod(i, layout["cols"])
    tile = pic[r * 28:(r + 1) * 28, q * 28:(q + 1) * 28]
    assert np.abs(tile / 255.0 - images[i, 0]).max() <= 0.5 / 255 + 1e-6


def test_class_names_come_from_the_data_set() -> None:
    labels = np.array([0, 9, 3])
    assert payloads.class_names("fashion", labels)[9] == "Ankle boot"
    assert payloads.class_names("mnist", labels)[3] == "digit 3"
    assert payloads.class_names("folder", np.array([0, 1])) == ["class 0", "class 1"]


@pytest.fixture(scope="module")
def trained() -> Session:
    s = Session(SMALL, turns=None)
    for _ in range(2 * SMALL.ot_every):
        s.step()
    t0 = time.monotonic()
    while s.view().iteration < 2 * SMALL.ot_every:
        assert time.monotonic() - t0 < 120
        time.sleep(0.05)
    yield s
    s.stop()


@pytest.mark.slow  # the fixture trains 16 iterations (about 15 s on 2 busy cores)
def test_a_click_on_the_plane_decodes_with_the_snapshot_of_the_newest_frame(trained: Session) -> None:
    v = trained.view()
    it, g = trained.snapshot()
    assert it == v.frames[-1].iteration  # published with the frame
    answer = payloads.answer({"ours": (trained, v)}, lambda z: np.asarray(z, np.float32), "identity")
    img, note = answer.decode(0.5, -1.0, "ours")
    with torch.no_grad():
        want = g(torch.tensor([[0.5, -1.0]]))[0].numpy()
    assert img.shape == (1, 28, 28) and np.allclose(img, want, atol=1e-6)
    assert "ours" in note and "(0.50, -1.00)" in note and f"iteration {it}" in note
    recon, path, note = answer.pick(3, "ours")
    assert path.shape == (len(v.frames) + 1, 2) and np.allclose(path[-1], v.live[3], atol=1e-6)
    assert np.allclose(recon, decode_at(g, v.live[3]), atol=1e-6) and "kept frames" in note
    assert payloads.answer({"ours": (trained, v)}, None, "umap").decode(0.0, 0.0, "ours") is None  # not linear


@pytest.mark.slow
def test_the_umap_plane_gets_the_last_correction_and_a_pinned_chain_from_the_projection_worker(trained) -> None:
    """The worker that places the live clouds on a UMAP plane also places the last correction's clouds and pairs
    and a pinned point's chain path, never waited for. A PCA worker stands in for UMAP (its compile takes
    minutes; tests/test_explorer_browser.py runs UMAP in the app): the same process, queues and messages."""
    import streamlit as st
    from lvm.projection import Projection

    v, key = trained.view(), "main-umap-test"
    corr = next(f for f in reversed(v.frames) if f.before is not None)
    assert payloads.umap_correction(key, corr) is None  # no UMAP worker for this run: nothing (the view has PCA)
    w = st.session_state[f"proj:{key}:umap"] = projection.Worker("pca", v.frames[-1].z)
    st.session_state["lc:ask:train:pick"] = {"i": 3, "panel": "ours", "seq": 7}
    ref = Projection("pca").fit(v.frames[-1].z)
    try:
        got = _until(lambda: payloads.umap_correction(key, corr))
        assert got[0] == {"iteration": corr.iteration}
        for name, z in (("before", corr.before), ("after", corr.z), ("src", corr.source), ("tgt", corr.target)):
            assert np.allclose(np.abs(got[1][name]), np.abs(ref.transform(z)), atol=1e-4), name
        runs = {"ours": (trained, v)}
        head, blobs = _until(lambda: (got := payloads.umap_path("train", key, runs))[0] and got)
        chain = np.stack([f.z[3] for f in v.frames] + [v.live[3]])
        assert head == {"pick_path": {"seq": 7}}
        assert np.allclose(np.abs(blobs["pick_path"]), np.abs(ref.transform(chain)), atol=1e-4)
        st.session_state["lc:ask:train:pick"] = {"i": 5, "panel": "ours", "seq": 8}
        assert payloads.umap_path("train", key, runs) == ({}, {})  # a new pin never gets the old pin's path
    finally:
        w.close()
        del st.session_state[f"proj:{key}:umap"], st.session_state["lc:ask:train:pick"]


def _until(get, timeout: float = 120):
    t0 = time.monotonic()
    while not (got := get()):
        assert time.monotonic() - t0 < timeout
        time.sleep(0.05)
    return got


def decode_at(g, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return g(torch.from_numpy(np.asarray(z, np.float32)[None]))[0].numpy()


def test_a_point_of_the_pca_plane_lifts_to_the_latent_it_stands_for() -> None:
    from lvm.projection import Projection

    z = np.random.RandomState(2).randn(500, 16) * np.linspace(3, 0.1, 16)
    p = Projection("pca").fit(z)
    lifted = payloads.lift(p.transform, 16, 1.5, -0.5)
    assert np.allclose(p.transform(lifted[None])[0], [1.5, -0.5], atol=1e-5)  # it lies on the clicked point
    rest = lifted - payloads.lift(p.transform, 16, 0.0, 0.0)
    assert np.isclose(np.linalg.norm(rest), np.hypot(1.5, 0.5), atol=1e-5)  # and nowhere off the plane


@pytest.mark.slow
def test_the_fit_curves_plot_w2_and_read_the_older_keys_until_the_new_ones_land(trained: Session) -> None:
    v = trained.view()
    header, blobs = payloads.curves({"ours": v}, [(5, "alpha 0.5")])
    q = blobs["ours:q_w2sq"].reshape(-1, 2)
    fits = [(r["iteration"], r.get("q_w2sq", r.get("q_fit"))) for r in v.records if "q_w2sq" in r or "q_fit" in r]
    assert len(q) == len(fits) >= 2 and np.allclose(q[:, 1], [np.sqrt(max(f, 0)) for _, f in fits], rtol=1e-5)
    assert header["marks"] == [[5, "alpha 0.5"]] and header["band"] > 0


def test_the_projection_worker_runs_outside_the_app_and_answers_transforms() -> None:
    """The worker is a fresh interpreter importing lvm.projection only (PCA here: UMAP's compile takes minutes;
    tests/test_explorer_browser.py runs UMAP inside the app)."""
    z = np.random.RandomState(3).randn(300, 8).astype(np.float32)
    w = projection.Worker("pca", z)
    try:
        t0 = time.monotonic()
        while not w.ready():
            assert time.monotonic() - t0 < 120
            time.sleep(0.05)
        assert w.error is None and w.prior().shape == (projection.PRIOR_N, 2)
        assert w.latest(1, {"a": z[:5]}) is None  # asked, not waited for
        t0 = time.monotonic()
        while (got := w.latest(1, {"a": z[:5]})) is None:
            assert time.monotonic() - t0 < 60
            time.sleep(0.05)
        from lvm.projection import Projection

        assert got[0] == 1 and np.allclose(np.abs(got[1]["a"]), np.abs(Projection("pca").fit(z).transform(z[:5])),
                                           atol=1e-4)
    finally:
        w.close()
