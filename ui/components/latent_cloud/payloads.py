"""What the views send the explorer: the live clouds of ours and ABP, the replay of kept frames, the fit curves,
and the answers to clicks (decode a point of the plane, pick a point of the cloud), from live sessions."""
from __future__ import annotations

import math

import numpy as np
import torch

from lvm.live.frames import View
from lvm.live.session import Session
from ui import projection
from ui.components import latent_cloud as lc

DIGITS = tuple(f"digit {k}" for k in range(10))
CLASS_NAMES = {"mnist": DIGITS, "svhn": DIGITS,
               "fashion": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                           "Ankle boot")}
RUN_COLOURS = {"ours": "#1f77b4", "ABP": "#d62728"}
PLANES = {"identity": "the latent plane itself (d = 2)", "first two coordinates": "the plane of z's first two "
          "coordinates", "pca": "the PCA plane"}


def class_names(data_name: str, labels: np.ndarray) -> list[str]:
    """Names by class value: the data set's own (Fashion-MNIST's are garments), else "class k"."""
    top = int(labels.max()) + 1 if len(labels) else 0
    own = CLASS_NAMES.get(data_name, ())
    return [own[k] if k < len(own) else f"class {k}" for k in range(top)]


def token(s: Session, v: View) -> str:
    """Names one run of one session (a Reset makes a new one): the browser keeps its sprite sheet under it."""
    return f"{id(s):x}:{v.run}"


def sprite_blobs(s: Session) -> tuple[dict, dict]:
    """The view subsample's training images as one sprite sheet, their classes and data-set indices."""
    idx = s.view_index()
    images = s.data().x[torch.from_numpy(idx)].numpy()
    sheet, layout = lc.sprite(images)
    labels = s.view().labels
    return {"sprite": layout}, {"sprite": sheet, "labels": labels.astype(np.uint8), "index": idx.astype(np.int32)}


def lift(xy_of, d: int, x: float, y: float) -> np.ndarray:
    """The latent a point (x, y) of a linear plane stands for: z = x u + y v, with u, v the plane's orthonormal
    axes in R^d (read off the projection of the unit vectors), zero in every direction off the plane."""
    if d == 2:
        return np.array([x, y], dtype=np.float32)
    axes = xy_of(np.eye(d, dtype=np.float32))  # (d, 2): row j is e_j's image, i.e. column j of P
    return (axes @ np.array([x, y], dtype=np.float32)).astype(np.float32)


def decode(s: Session, z: np.ndarray) -> np.ndarray:
    """g(z) with the session's generator snapshot (published with its newest frame: never waits for training)."""
    _, g = s.snapshot()
    with torch.no_grad():
        return g(torch.from_numpy(np.asarray(z, np.float32)[None]))[0].numpy()


def answer(runs: dict[str, tuple[Session, View]], xy_of, method: str) -> lc.Answer:
    """Decode and pick for the panels named in `runs` ("ours", "ABP"); `xy_of` places latents on the plane, None
    where the plane is not linear (UMAP): no decode there, and no chain path."""
    def dec(x: float, y: float, panel: str):
        if xy_of is None:
            return None
        s, v = runs.get(panel, next(iter(runs.values())))
        d = v.live.shape[1]
        it = s.snapshot()[0]
        where = (f"z = ({x:.2f}, {y:.2f})" if d == 2 else
                 f"the point ({x:.2f}, {y:.2f}) of the {method} plane lifted to R^{d}: z = x u + y v along the plane's "
                 "two axes and 0 in the other directions (the image of a latent the cloud rarely holds exactly)")
        return decode(s, lift(xy_of, d, x, y)), f"{panel}: g(z) at {where}; generator of iteration {it}"

    def pick(i: int, panel: str):
        s, v = runs.get(panel, next(iter(runs.values())))
        it = s.snapshot()[0]
        if xy_of is None:  # the path comes a moment later from the UMAP worker (`umap_path`)
            return decode(s, v.live[i]), np.zeros((0, 2), np.float32), (
                f"{panel}: its chain z_i over the {len(v.frames)} kept frames (black line: each position's UMAP "
                f"image, joined by straight pieces, a guide only, as UMAP bends space); g(z_i) by the generator of "
                f"iteration {it}")
        path = np.concatenate([xy_of(np.stack([f.z[i] for f in v.frames] + [v.live[i]]))])
        plane = PLANES.get(method, f"the {method} plane")
        return decode(s, v.live[i]), path, (f"{panel}: its chain z_i over the {len(v.frames)} kept frames (black "
                                           f"line, on {plane}); g(z_i) by the generator of iteration {it}")
    return lc.Answer(dec, pick)


def umap_correction(key: str, corr) -> tuple[dict, dict] | None:
    """A correction's clouds before and after Eq. 10 and its assignment pairs (z_hat_i, T(z_hat_i)) on run `key`'s
    UMAP plane, placed by its worker: (header entry, blobs) of the newest correction placed so far (a few
    seconds behind the live cloud, never waited for), or None before the first is placed."""
    got = projection.place_more(key, corr.iteration, {"before": corr.before, "after": corr.z, "src": corr.source,
                                                       "tgt": corr.target})
    return None if got is None else ({"iteration": got[0]}, got[1])


def umap_path(view: str, key: str, runs: dict[str, tuple[Session, View]]) -> tuple[dict, dict]:
    """On run `key`'s UMAP plane, the chain path of the point pinned last on explorer `view` over the kept frames
    and now, placed by the worker: header {"pick_path": {"seq"}} and blob "pick_path" once placed, else nothing
    (cloud.js draws it when its pin's sequence number matches)."""
    ask = lc.asked(view, "pick")
    if ask is None:
        return {}, {}
    s, v = runs.get(str(ask.get("panel")), next(iter(runs.values())))
    i, version = int(ask["i"]), (view, ask["seq"])
    got = projection.place_more(key, version, {"path": np.stack([f.z[i] for f in v.frames] + [v.live[i]])})
    if got is None or got[0] != version:
        return {}, {}
    return {"pick_path": {"seq": ask["seq"]}}, {"pick_path": got[1]["path"]}


def not_decodable(d: int, method: str) -> str:
    return ("" if method != "umap" else
            f"No decode on the {method.upper()} plane: UMAP is not linear, a point of its plane stands for no one "
            "latent. Choose PCA to decode clicked points.")


def w2(value: float | None) -> float:
    return math.sqrt(max(value, 0.0)) if value is not None and math.isfinite(value) else float("nan")


def curves(runs: dict[str, View], marks: list[tuple[int, str]]) -> tuple[dict, dict]:
    """The fit curves: W2 = sqrt(max(W2^2, 0)) to the prior in latent standard deviations per run, of q(z^K) from
    noise (solid) and of the persistent chains (dotted), with the "on the prior" level as a band.

    Reads the debiased `q_w2sq` / `chains_w2sq` (and `View.on_prior_w2sq`) where the trainer logs them, else the
    older exact OT cost `q_fit` / `chain_fit` (a W2^2 that is not debiased) and 1.5 x its prior-vs-prior level."""
    series, blobs, band, debiased = [], {}, None, False
    for name, v in runs.items():
        recs = v.records
        debiased = debiased or any("q_w2sq" in r for r in recs)
        for kind, new, old, dash in (("q(z^K) from noise", "q_w2sq", "q_fit", False),
                                     ("chains", "chains_w2sq", "chain_fit", True)):
            pts = [(r["iteration"], w2(r.get(new, r.get(old)))) for r in recs if new in r or old in r]
            key = f"{name}:{new}"
            blobs[key] = np.array(pts, np.float32).reshape(-1)
            series.append({"name": f"{name}: {kind}", "blob": key, "colour": RUN_COLOURS.get(name, "#555"),
                           "dash": dash})
        level = getattr(v, "on_prior_w2sq", None)
        band = w2(level) if level is not None else w2(1.5 * v.q_prior_fit)
    title = ("W2 to the prior N(0, I), in latent standard deviations" if debiased else
             "distance to the prior: sqrt of the exact OT cost, in latent standard deviations")
    header = {"mode": "curves", "title": title, "band": None if band is None or math.isnan(band) else band,
              "band_label": "on the prior", "marks": [list(m) for m in marks],
              "empty": "the curves start at the first L-th iteration", "series": series}
    return header, blobs
