"""The latent cloud explorer: a `st.components.v2` component drawn on a canvas in the browser
(base.js, plane.js, curves.js and cloud.js, joined into one module at import).

The server sends arrays, never pictures of clouds: one packed byte string per redraw (`pack`), holding the
newest frame's positions as float32 (m x 2 x 4 bytes per run shown: 8,000 bytes for the 1,000 points of a
view), the last correction's before/after clouds and assignment pairs only when a new correction arrives,
and the thumbnails of the view's training images (one PNG sprite sheet), their classes and indices once per
run and page visit. `sent` remembers, per browser session, what this page has already sent since its last
full run (a page switch remounts the component; a full run sends everything again).

Every packet also says whether this browser session is in projector mode (`ui.projector`): cloud.js then
draws thick points and lines, large type and a high-contrast palette, keeping the user's zoom and pinned point.

Clicks come back as trigger values: "decode" (a point of the plane) and "pick" (a point of the cloud); the
view answers them in the same redraw with the callables it passes (`Answer`).
"""
from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from ui import projector

HERE = Path(__file__).parent
MAGIC = b"LVC1"
DTYPES = {np.dtype(np.float32): "f4", np.dtype(np.uint8): "u1", np.dtype(np.int32): "i4", np.dtype(np.uint16): "u2"}

PARTS = ("base.js", "plane.js", "curves.js", "cloud.js")  # one ES module, joined in this order
_mount = st.components.v2.component("lvm.latent_cloud", js="\n".join((HERE / f).read_text() for f in PARTS),
                                     css=(HERE / "cloud.css").read_text())


def pack(header: dict, blobs: dict[str, np.ndarray | bytes | None]) -> bytes:
    """MAGIC, the JSON header's length (uint32 LE), the header (with "blobs": name -> [offset, bytes, dtype]),
    padded to 4 bytes, then each blob 4-byte aligned. Arrays go as float32 unless uint8/int32/uint16."""
    parts, table, offset = [], {}, 0
    for name, a in blobs.items():
        if a is None:
            continue
        if isinstance(a, bytes):
            raw, dt = a, "u1"
        else:
            a = np.ascontiguousarray(a if np.asarray(a).dtype in DTYPES else np.asarray(a, dtype=np.float32))
            raw, dt = a.tobytes(), DTYPES[a.dtype]
        table[name] = [offset, len(raw), dt]
        pad = -len(raw) % 4
        parts.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    text = json.dumps(dict(header, blobs=table), separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    return MAGIC + struct.pack("<I", len(text)) + text + b"".join(parts)


def unpack(packet: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The inverse of `pack` (for tests and the budget script): (header, name -> array)."""
    assert packet[:4] == MAGIC, "not a latent_cloud packet"
    n = struct.unpack("<I", packet[4:8])[0]
    header = json.loads(packet[8:8 + n])
    base, kinds = 8 + n, {v: k for k, v in DTYPES.items()}
    return header, {name: np.frombuffer(packet, kinds[dt], count=size // kinds[dt].itemsize, offset=base + off)
                    for name, (off, size, dt) in header["blobs"].items()}


def png(img: np.ndarray) -> bytes:
    """(C, H, W) in [0, 1] -> PNG bytes at the image's own size (the browser enlarges it, pixelated)."""
    a = (np.clip(np.asarray(img, dtype=np.float32), 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def sprite(images: np.ndarray, cols: int = 40) -> tuple[bytes, dict]:
    """(m, C, H, W) in [0, 1] -> one PNG sheet, `cols` thumbnails a row, and its layout for cloud.js."""
    m, c, h, w = images.shape
    rows = -(-m // cols)
    sheet = np.zeros((c, rows * h, cols * w), dtype=np.float32)
    for i in range(m):
        r, q = divmod(i, cols)
        sheet[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = images[i]
    return png(sheet), {"cols": cols, "w": w, "h": h}


@dataclass
class Answer:
    """What the view does with a click: decode(x, y, panel) -> (C, H, W) image and a note, or None when this
    plane cannot be decoded; pick(i, panel) -> (reconstruction (C, H, W), chain path (k, 2), note)."""

    decode: Callable[[float, float, str], tuple[np.ndarray, str] | None] | None = None
    pick: Callable[[int, str], tuple[np.ndarray, np.ndarray, str]] | None = None


def forget_sent() -> None:
    """Call at the top of a view (a full run): its components may be new in the browser, so everything is sent
    again (the sprite sheet, the last correction)."""
    for k in [k for k in st.session_state if str(k).startswith("lc:sent:")]:
        del st.session_state[k]


def _remember(key: str, event: str) -> None:
    """Trigger callback: keep the click for the redraw it causes (trigger values last one run)."""
    value = getattr(st.session_state.get(key), event, None)
    if value is None and isinstance(st.session_state.get(key), dict):
        value = st.session_state[key].get(event)
    if value is not None:
        st.session_state[f"lc:ask:{key}:{event}"] = value


def asked(key: str, event: str) -> dict | None:
    """The newest click of this kind ("pick": {i, panel, seq}; "decode": {x, y, panel, seq}) on explorer `key`."""
    return st.session_state.get(f"lc:ask:{key}:{event}")


def answers(key: str, answer: Answer) -> tuple[dict, dict]:
    """The header entries and blobs answering this view's newest pick and decode (each answered once, then
    kept and sent again with its sequence number, which cloud.js matches against its own)."""
    header, blobs = {}, {}
    for event in ("pick", "decode"):
        ask = st.session_state.get(f"lc:ask:{key}:{event}")
        slot = f"lc:answer:{key}:{event}"
        if ask is not None and st.session_state.get(slot, ({},))[0].get("seq") != ask.get("seq"):
            st.session_state[slot] = (ask, _answer(answer, event, ask))
        if ask is not None and st.session_state.get(slot) is not None:
            asked, got = st.session_state[slot]
            if got is not None:
                header[event], extra = got
                blobs.update(extra)
    return header, blobs


def _answer(answer: Answer, event: str, ask: dict) -> tuple[dict, dict] | None:
    if event == "decode" and answer.decode is not None:
        got = answer.decode(float(ask["x"]), float(ask["y"]), str(ask.get("panel", "ours")))
        if got is None:
            return None
        img, note = got
        return {"seq": ask["seq"], "note": note}, {"decoded": png(img)}
    if event == "pick" and answer.pick is not None:
        recon, path, note = answer.pick(int(ask["i"]), str(ask.get("panel", "ours")))
        return {"seq": ask["seq"], "note": note}, {"recon": png(recon), "path": np.asarray(path, np.float32)}
    return None


def show(key: str, header: dict, blobs: dict, answer: Answer | None = None, height: int | None = None) -> bytes:
    """Mount (or update: the element's identity is `key`, so new data never remounts it) the explorer with
    this packet; returns the packet's bytes (what this redraw sends)."""
    extra_h, extra_b = answers(key, answer) if answer is not None else ({}, {})
    packet = pack(dict(header, projector=projector.is_on(), **extra_h), {**blobs, **extra_b})
    callbacks = {"on_decode_change": lambda: _remember(key, "decode"), "on_pick_change": lambda: _remember(key, "pick")}
    _mount(key=key, data=packet, height=height or "content", **callbacks)
    return packet


def once(key: str, what: str, version) -> bool:
    """True the first time `what` at `version` is asked for under `key` since the last `forget_sent` (send it),
    then False until its version changes."""
    slot = f"lc:sent:{key}:{what}"
    if st.session_state.get(slot) == version:
        return False
    st.session_state[slot] = version
    return True
