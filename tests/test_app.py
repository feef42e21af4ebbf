"""Every page of the app under Streamlit's AppTest: it renders without exception and its widgets act.

Real Streamlit, real MNIST, the real training thread and the models in pretrained/.
"""
from __future__ import annotations

import gc
import io
import json
import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from ui import warmup
from lvm import pretrained
from lvm.projection import Projection
from lvm.presets import DEMO

APP = str(Path(__file__).resolve().parent.parent / "app.py")
needs_demo = pytest.mark.skipif(pretrained.find("demo") is None, reason="pretrained/demo is missing")


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    warmup.join()  # the server's warm-up, started by Home: a view visited before it ends waits for it (tested below)
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _explorers(at: AppTest) -> list:
    """The explorer components on the page (clouds and curves; not the presenter's cookie component nor the
    sidebar's projector look, which every page mounts)."""
    return [c for c in at.get("bidi_component") if c.key not in ("presenter_key_cookie", "projector_look")]


def _session(at: AppTest):
    """The page's training session, reset: AppTest gives every test the same browser-session id."""
    s = at.session_state["session"]
    s.stop()
    s.reset(DEMO)
    return s


def test_the_warm_up_moves_the_imported_libraries_out_of_full_collections() -> None:
    _app()  # Home starts the warm-up; it ends with warmup.freeze()
    assert gc.get_freeze_count() > 100_000  # torch, streamlit, lvm: never scanned again by a full collection

    class Node:
        pass

    cycle = Node()
    cycle.self = cycle
    gone = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert gone() is None  # what is made after the freeze is still collected


@needs_demo
def test_home_shows_the_demo_latents_and_samples() -> None:
    """Both as ready-made pictures (nothing to draw on the server before them)."""
    at = _app()
    assert at.title[0].value.startswith("Short-run MCMC")
    assert len(at.get("image")) == 2 and at.get("image")[0].proto.imgs[0].url  # the cloud, then the samples
    assert not at.error


@needs_demo
def test_home_shows_the_models_own_q_with_its_distance_and_abps_and_the_chains_on_request() -> None:
    manifest = json.loads((pretrained.root() / "demo" / "manifest.json").read_text())
    at = _app()
    text = at.caption[0].value
    ours, abp = (max(v, 0.0) ** 0.5 for v in (manifest["metrics"]["q_w2sq"], manifest["abp"]["q_w2sq"]))
    assert f"W2 = {ours:.2f}" in text and f"ABP, trained the same way but without the OT correction: W2 = {abp:.2f}" \
        in text and "q(z^K)" in text
    first = at.get("image")[0].proto.imgs[0].url
    at.toggle[0].set_value(True).run()
    assert not at.error and at.get("image")[0].proto.imgs[0].url != first  # the picture with the chains


@needs_demo
def test_home_draws_the_picture_of_a_demo_without_one_and_refuses_a_changed_one(monkeypatch, tmp_path) -> None:
    """A demo made before preview.png existed gets its latents drawn there and then; a picture whose bytes
    differ from the manifest's hash is an error that says what to run, not a stale picture."""
    shutil.copytree(pretrained.root() / "demo", tmp_path / "demo")
    manifest_path = tmp_path / "demo" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    monkeypatch.setenv("LVM_PRETRAINED_DIR", str(tmp_path))
    (tmp_path / "demo" / "preview.png").write_bytes(b"not the picture")
    at = _app()
    assert "sha256 differs" in at.error[0].value and "make_pretrained.sh preview-png" in at.error[0].value
    del manifest["files"]["preview_png"]
    manifest_path.write_text(json.dumps(manifest))
    warmup.demo_preview.clear()
    at = _app()
    assert not at.error and len(at.get("image")) == 2


@needs_demo
def test_make_pretrained_draws_the_landing_picture_and_lists_it_in_the_manifest(tmp_path) -> None:
    import argparse
    import hashlib

    from scripts.make_pretrained import preview_png

    demo = tmp_path / "demo"
    shutil.copytree(pretrained.root() / "demo", demo)
    manifest = json.loads((demo / "manifest.json").read_text())
    del manifest["files"]["preview_png"]
    (demo / "manifest.json").write_text(json.dumps(manifest))
    (demo / "preview.png").unlink()
    preview_png(argparse.Namespace(out=tmp_path))
    entry = json.loads((demo / "manifest.json").read_text())["files"]["preview_png"]
    png = (demo / entry["path"]).read_bytes()
    assert hashlib.sha256(png).hexdigest() == entry["sha256"]
    assert Image.open(io.BytesIO(png)).size == (460, 480)
    assert warmup.demo_preview(str(tmp_path))[3] == png


def test_home_without_pretrained_models_says_what_to_do(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LVM_PRETRAINED_DIR", str(tmp_path))
    at = _app()
    assert "make_pretrained" in at.info[0].value and not at.error
    at.switch_page("views/anomaly.py").run()
    assert not at.exception and "No detector yet" in at.info[0].value
    at.switch_page("views/reconstruct.py").run()
    assert not at.exception and "No model yet" in at.info[0].value


def test_a_view_visited_before_the_warm_up_ends_says_so_and_draws_at_once(monkeypatch) -> None:
    at = _app()
    monkeypatch.setattr(warmup, "ready", lambda: False)
    at.switch_page("views/train.py").run()
    assert not at.exception and at.title[0].value == "Train"
    assert "Preparing the live runs" in at.info[0].value and not at.button  # no controls until the runs exist
    if pretrained.find("demo") is not None:
        assert len(at.get("image")) == 1  # the demo's latents meanwhile
    monkeypatch.undo()
    at.run()
    assert not at.exception and at.button(key="start")  # once it is done, the view itself


@pytest.mark.slow
def test_train_page_steps_changes_alpha_live_and_resets(wait_until) -> None:
    at = _app("views/train.py")
    s = _session(at)
    assert "iteration 0" in at.markdown[0].value or any("iteration 0" in m.value for m in at.markdown)
    at.button(key="step").click().run()
    wait_until(lambda: s.view().iteration == 1)
    at.slider(key="alpha").set_value(0.8).run()
    assert s.cfg.alpha == 0.8  # live: no reset needed
    at.button(key="step").click().run()
    wait_until(lambda: s.view().iteration == 2)
    at.run()  # what the fragment's next poll draws
    assert any("iteration 2" in m.value for m in at.markdown)
    at.number_input(key="d").set_value(3).run()
    assert any("Reset" in w.value for w in at.warning)
    at.button(key="reset").click().run()
    assert s.cfg.model.latent_dim == 3 and s.view().iteration == 0
    at.button(key="step").click().run()
    wait_until(lambda: s.view().iteration == 1)
    at.run()  # d = 3 draws through the PCA projection
    assert not at.exception and len(at.get("image")) == 1  # the decoded samples; clouds and curves: the explorer
    assert len(_explorers(at)) == 2
    assert "abp" in at.session_state["sessions"]  # ABP beside ours is on by default
    s.start()
    wait_until(lambda: len(s.view().frames) >= 2, 600)  # a projection is fitted once the chains carry information
    s.pause()
    wait_until(lambda: s.view().state == "paused")
    it = s.view().iteration
    at.radio(key="proj").set_value("umap").run()  # UMAP fits in another process: the page goes on with PCA
    assert not at.exception and any("fitting the UMAP" in c.value for c in at.caption)
    assert len(at.get("image")) == 1 and len(_explorers(at)) == 2
    at.button(key="step").click().run()  # the controls still act while it fits
    wait_until(lambda: s.view().iteration == it + 1)
    from ui import projection

    projection.stop_fits()  # UMAP's first compile takes a minute: this test stops at the PCA stand-in
    s.stop()
    at.number_input(key="limit").set_value(50).run()
    at.multiselect(key="classes").set_value([]).run()  # none = all ten digits
    assert any("Reset" in w.value for w in at.warning)
    at.button(key="reset").click().run()
    assert not at.exception and s.cfg.data.limit == 50 and s.cfg.data.classes == ()
    assert len(s.view().labels) == 50 and len(set(s.view().labels.tolist())) >= 8  # the first 50 images, all digits
    s.stop()


def test_latent_ot_page_replays_frames_and_picks_a_correction(wait_until) -> None:
    at = _app("views/latent_ot.py")
    s = _session(at)
    at.run()
    assert "No frames yet" in at.info[0].value
    s.start()
    wait_until(lambda: len(s.view().frames) >= 4)
    s.pause()
    at.run()
    assert not at.exception and not at.get("image")  # no picture of a cloud: the explorer draws them
    abp = "abp" in at.session_state["sessions"]
    assert len(_explorers(at)) == 2 + abp  # the replay, one correction (and ABP beside ours when on)
    last = [f.iteration for f in s.view().frames if f.before is not None][-1]
    assert f"iteration {last}:" in " ".join(c.value for c in at.caption)  # follows the latest correction
    at.toggle(key="follow").set_value(False).run()
    first = at.select_slider(key="which").options[0]
    at.select_slider(key="which").set_value(int(first)).run()
    assert not at.exception and f"iteration {first}:" in " ".join(c.value for c in at.caption)
    s.stop()


@pytest.fixture
def media(monkeypatch) -> dict[str, bytes]:
    """The bytes of every image and download the pages hand Streamlit, by file id (AppTest drops its media store
    after each run): a subclass of Streamlit's own in-memory store that keeps a copy."""
    from streamlit.testing.v1 import app_test
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    kept: dict[str, bytes] = {}

    class Keeping(MemoryMediaFileStorage):
        def load_and_get_id(self, path_or_data, mimetype, kind, filename=None) -> str:
            file_id = super().load_and_get_id(path_or_data, mimetype, kind, filename)
            kept[file_id] = self.get_file(file_id).content
            return file_id

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Keeping)
    return kept


def _download(at: AppTest, media: dict[str, bytes], i: int) -> np.ndarray:
    """The picture behind the page's i-th download button, as the browser would save it."""
    url = at.get("download_button")[i].proto.url
    return np.asarray(Image.open(io.BytesIO(media[Path(url).stem])))


@needs_demo
def test_reconstruct_page_renders_grids_and_downloads(media) -> None:
    from dataclasses import replace

    import torch

    from lvm import metrics
    from ui.models import test_images

    at = _app("views/reconstruct.py")
    at.selectbox(key="model_rec").set_value("demo").run()  # the live run, if any, comes first
    assert len(at.get("image")) == 3 and len(at.get("download_button")) == 3  # test/rec, samples, manifold
    mse_100 = float(at.subheader[0].value.split("MSE ")[1])
    rec = _download(at, media, 0)
    assert rec.shape == (3 * (4 * 30 + 2), 3 * (8 * 30 + 2))  # 16 test images, 8 a row: 4 rows (x, g(z_hat)) x 3
    cfg, gen, _ = pretrained.find("demo").load()
    x, _ = test_images(cfg.data, 16)
    tile = rec[3 * 2:3 * 30:3, 3 * 2:3 * 30:3]  # top left, at its scale 3: the first test image
    assert np.abs(tile.astype(int) - np.round(x[0, 0] * 255)).max() <= 1
    at.slider(key="n_rec").set_value(8)
    at.slider(key="k_rec").set_value(10).run()
    assert not at.exception and len(at.get("image")) == 3
    assert _download(at, media, 0).shape == (3 * (2 * 30 + 2), 3 * (8 * 30 + 2))  # 8 images: 2 rows
    mse_10 = float(at.subheader[0].value.split("MSE ")[1])
    x8 = torch.from_numpy(test_images(cfg.data, 8)[0])
    _, rec8 = metrics.reconstruct(gen, x8, replace(cfg.langevin, steps=10), torch.Generator().manual_seed(0))
    assert mse_10 == pytest.approx(metrics.mse(x8, rec8), abs=1e-4) and abs(mse_10 - mse_100) > 1e-3  # K and n used
    man = _download(at, media, 2)
    assert man.shape == (2 * 28 * 15, 2 * 28 * 15)  # the default grid side 15, at scale 2, no padding
    at.slider(key="side").set_value(5).run()
    man = _download(at, media, 2)
    assert man.shape == (2 * 28 * 5, 2 * 28 * 5)
    with torch.no_grad():
        corners = gen(torch.tensor([[-2.5, 2.5], [2.5, -2.5]])).numpy()[:, 0]  # top left, bottom right of the grid
    assert np.abs(man[:56:2, :56:2].astype(int) - np.round(corners[0] * 255)).max() <= 1
    assert np.abs(man[-56::2, -56::2].astype(int) - np.round(corners[1] * 255)).max() <= 1


def _digits_folder(folder: Path, n: int) -> None:
    """n real MNIST training digits as PNG files in one flat folder (no test split)."""
    from lvm.config import DataConfig
    from lvm.data import load

    folder.mkdir(parents=True)
    for i, d in enumerate(load(DataConfig(limit=n), "train").x[:, 0]):
        Image.fromarray((d.numpy() * 255).round().astype(np.uint8)).save(folder / f"{i:03d}.png")


@pytest.mark.slow
def test_train_page_switches_method_solver_and_data_and_a_failed_reset_keeps_the_run(tmp_path, wait_until) -> None:
    at = _app("views/train.py")
    s = _session(at)
    at.run()
    at.radio(key="method").set_value("abp").run()
    at.button(key="reset").click().run()
    assert not at.exception and s.cfg.method == "abp" and s.cfg.alpha == 0.0
    assert at.slider(key="alpha").disabled and at.toggle(key="with_abp").disabled  # no correction, no ABP beside
    assert "abp" not in at.session_state["sessions"]
    at.radio(key="method").set_value("ours")
    at.selectbox(key="solver").set_value("exact").run()
    at.button(key="reset").click().run()
    assert (s.cfg.method, s.cfg.ot.solver) == ("ours", "exact") and s.cfg.alpha == at.slider(key="alpha").value
    assert at.session_state["sessions"]["abp"].cfg.ot.solver == "exact"  # ABP beside follows the new settings
    _digits_folder(tmp_path / "digits", 40)
    at.selectbox(key="data").set_value("folder")
    at.text_input(key="root").set_value(str(tmp_path / "digits"))
    at.number_input(key="limit").set_value(0).run()
    at.button(key="reset").click().run()
    assert not at.exception and (s.cfg.data.name, s.cfg.data.root) == ("folder", str(tmp_path / "digits"))
    assert len(s.view().live) == 40
    at.button(key="step").click().run()
    wait_until(lambda: s.view().iteration == 1)
    at.text_input(key="root").set_value(str(tmp_path / "nowhere")).run()
    at.button(key="reset").click().run()
    assert not at.exception and "Cannot start this run" in at.error[0].value and "nowhere" in at.error[0].value
    assert s.cfg.data.root == str(tmp_path / "digits") and s.view().iteration == 1  # the run goes on as it was
    s.stop()


@pytest.mark.slow
def test_train_page_abp_off_closes_its_run_and_refit_projection_fits_again(wait_until) -> None:
    at = _app("views/train.py")
    s = _session(at)
    at.run()
    abp = at.session_state["sessions"]["abp"]
    at.toggle(key="with_abp").set_value(False).run()
    assert "abp" not in at.session_state["sessions"]
    at.button(key="step").click().run()
    wait_until(lambda: s.view().iteration == 1)
    assert abp.view().iteration == 0 and abp.state != "running"  # closed: Step no longer reaches it
    at.slider(key="alpha").set_value(0.5)  # alpha 1 puts the chains on the same prior sample at every correction
    at.number_input(key="d").set_value(3)
    at.number_input(key="L").set_value(2)  # a frame every 2 iterations
    at.number_input(key="limit").set_value(500).run()
    at.button(key="reset").click().run()
    assert (s.cfg.model.latent_dim, s.cfg.ot_every) == (3, 2)
    s.start()
    wait_until(lambda: len(s.view().frames) >= 2, 600)  # a projection is fitted once the chains carry information
    s.pause()
    wait_until(lambda: s.view().state == "paused")
    at.run()
    slot = f"proj:main{s.view().run}:pca"
    first = at.session_state[slot]
    at.run()
    assert at.session_state[slot] is first  # fitted once, reused by every redraw
    it = s.view().iteration
    s.step()
    wait_until(lambda: s.view().iteration == it + 1, 600)
    s.step()
    wait_until(lambda: s.view().iteration == it + 2, 600)  # a new frame: the latents moved on
    at.button(key="refit").click().run()
    again = at.session_state[slot]
    assert again is not first and not np.allclose(again.transform(np.eye(3)), first.transform(np.eye(3)))
    assert np.allclose(np.abs(again.transform(s.view().frames[-1].z[:5])),
                       np.abs(Projection("pca").fit(s.view().frames[-1].z).transform(s.view().frames[-1].z[:5])),
                       atol=1e-4)  # fitted on the latents as they are now
    s.stop()


# The Anomaly page's tests are in tests/test_anomaly_view.py.
