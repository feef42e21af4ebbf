"""The server's one-time warm-up, torch-free: what a view shows before torch and the demo's runs are ready.

The first visit after a server starts pays for importing torch and lvm and for the first optimiser (which
imports torch._dynamo): 5-10 s on 2 cores. A background thread does that once per server, started by the
landing view (after its picture) or by the first view that needs it; a view visited before it is done shows
its title, what is being prepared, and the pretrained demo's picture within a second, then continues by itself.
"""
import gc
import hashlib
import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import streamlit as st

from ui.pictures import grids

POLL = 0.5  # seconds between checks of the warm-up while a view waits for it


def pretrained_dir() -> Path:
    """The app's pretrained models: $LVM_PRETRAINED_DIR, else the repository's pretrained/ (app.py sets the
    variable to this for ``lvm.pretrained``, which assumes no layout)."""
    return Path(os.environ.get("LVM_PRETRAINED_DIR") or Path(__file__).resolve().parent.parent / "pretrained")


@st.cache_data(show_spinner=False)
def demo_preview(folder: str) -> tuple[dict, np.ndarray, np.ndarray, bytes | None] | None:
    """(manifest, latents (m, 2), samples (36, 1, 28, 28) uint8, the latents' picture as PNG or None) of
    pretrained/demo, hash-checked; None if absent."""
    path = Path(folder) / "demo" / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if manifest["files"].get("preview") is None:
        return None

    def read(key: str) -> bytes:
        return demo_file(str(path.parent.parent), key)

    with np.load(io.BytesIO(read("preview"))) as f:
        latents, samples = f["latents"], f["samples"]
    return manifest, latents, samples, read("preview_png") if "preview_png" in manifest["files"] else None


def demo_file(folder: str, key: str) -> bytes:
    """The bytes of the demo's file listed under `key` in its manifest, hash-checked (ValueError if they differ)."""
    path = Path(folder) / "demo" / "manifest.json"
    manifest = json.loads(path.read_text())
    file = path.parent / manifest["files"][key]["path"]
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest["files"][key]["sha256"]:
        maker = "preview-png" if key.endswith("_png") else "demo"
        raise ValueError(f"{file}: sha256 differs from the manifest; re-run scripts/make_pretrained.sh {maker}")
    return data


@st.cache_data(show_spinner=False)
def draw_preview(z: np.ndarray, title: str) -> bytes:
    """The demo's picture for a demo made before preview.png existed: drawn now (matplotlib, not torch)."""
    from ui.pictures import clouds as cloud_pictures

    return cloud_pictures.cloud_png(z, grids.preview_lim(z), title)


_lock = threading.Lock()
_started: tuple[threading.Thread, float] | None = None  # the warm-up thread and when it began: one per server


def _thread() -> tuple[threading.Thread, float]:
    """Once per server: import torch and lvm and build (and drop) the demo's two runs, in the background."""
    global _started
    with _lock:
        if _started is None:
            def work() -> None:
                from lvm.presets import DEMO
                from ui import models, registry  # torch and lvm: imported here, never before a view's first picture
                try:
                    registry.warm_up()
                    models.test_images(DEMO.data, 1)  # the Reconstruct view's first visit would wait for it
                finally:
                    freeze()
            thread = threading.Thread(target=work, name="lvm-warm-up", daemon=True)
            thread.start()
            _started = thread, time.monotonic()
    return _started


def freeze() -> None:
    """Collect the garbage, then move every object alive (what the server imported) out of the collector's
    reach: its full collections stop every thread of the server (docs/decisions.md, "gc.freeze")."""
    gc.collect()
    gc.freeze()


def start() -> None:
    """Start the warm-up if this server has not yet."""
    _thread()


def join() -> None:
    """Start the warm-up if needed and wait for its end."""
    _thread()[0].join()


def ready() -> bool:
    """True once the warm-up has ended (a failure included: the view then shows the real error itself)."""
    return not _thread()[0].is_alive()


def wait(title: str) -> None:
    """Unless the warm-up is done: draw `title`, what is being prepared and the pretrained demo's latents, poll
    until it is done, rerun the page, and stop this run of the view's script."""
    if ready():
        return
    st.title(title)
    left, right = st.columns([3, 2])

    @st.fragment(run_every=POLL)
    def progress() -> None:
        waited = time.monotonic() - _thread()[1]
        if ready():
            st.rerun(scope="app")
        st.info(f"Preparing the live runs: the first visit after the server starts imports torch and builds "
                f"the demo's two runs (5-10 s on 2 cores; {waited:.0f} s so far). This page goes on by itself.")

    with right:
        progress()
    try:
        preview = demo_preview(str(pretrained_dir()))
    except (ValueError, KeyError, OSError):
        preview = None
    if preview is not None:
        manifest, z, _, png = preview
        left.image(png if png is not None else draw_preview(z, manifest["title"]))
        left.caption("Meanwhile: the pretrained demo model's persistent chains after training, for a first look; "
                     "the live runs start from scratch.")
    st.stop()
