"""Train: settings, Start / Pause / Step / Reset, and q(z^K) pulled onto the prior live, ABP beside it."""
import streamlit as st

from ui.components import latent_cloud
from ui.components.latent_cloud import payloads
from ui.pictures import grids
from ui import controls, projection, registry, widgets

PAUSED_EVERY = 0.25  # seconds between redraws while not running: a slower Step's iteration shows at once, and
#                      a redraw of a paused run costs next to nothing (about 16 KB of positions)

s = registry.main_session()
cfg = s.cfg
st.title("Train")
widgets.explain("Each dot is one training image's persistent chain z_i after K Langevin steps (Eq. 7), coloured by "
           "class; the points glide from one update to the next. Every L iterations the whole population is "
           "matched one-to-one to a fixed prior sample and moved by Eq. 10: you see each point travel from z_hat "
           "(the grey cloud before the correction) along its assignment line (a sample of them is drawn). "
           "ABP, trained beside it with alpha = 0 (no correction), is drawn beside or on the same axes.\n\n"
           "Hover a point to see its training image; click it to pin it (its reconstruction and its chain's path); "
           "click the empty plane to see what the generator draws there, g(z). Wheel or pinch to zoom, drag to "
           "pan, double-click to reset. The layers, the slow motion and the replay of the last correction are in "
           "the bar above the clouds.\n\n"
           "The chains are what the correction moves, so they sit on the prior by construction right after it. "
           "The honest test is the model's own short-run inference q(z^K): K Langevin steps from fresh noise "
           "with the current generator (the solid curves: its W2 distance to the prior), which reaches the prior "
           "only if the generator has learned to map the prior onto the data.",
           r"z \leftarrow z + \tfrac{s^2}{2}\nabla_z \log p(z \mid x) + s\,\xi",
           r"z_i \leftarrow \alpha\,T(z_i) + (1-\alpha)\,z_i")

panel = controls.panel(s)  # the presenter's controls, or a viewer's line saying the presenter has them
cfg, abp, rate, proj = panel.cfg, panel.abp, panel.rate, panel.proj


def _rate(records: tuple) -> str:
    """Iterations per second over the last 20 iterations: by the wall clock (what the room sees, other runs
    taking their turns included) and by the iterations' own time."""
    last = records[-20:]
    if len(last) < 2:
        return ""
    own = len(last) / max(sum(r["seconds"] for r in last), 1e-9)
    span = last[-1].get("wall", 0.0) - last[0].get("wall", 0.0)
    wall = (last[-1]["iteration"] - last[0]["iteration"]) / span if span > 0 else own
    return f"{wall:.1f} it/s ({own:.1f} of its own time)"


def _fit_text(v, name: str) -> str:
    """The newest W2 of q(z^K) to the prior (the debiased q_w2sq when logged, else the older q_fit)."""
    r = next((r for r in reversed(v.records) if "q_w2sq" in r or "q_fit" in r), None)
    if r is None:
        return ""
    return f"{name}: q(z^K) W2 {payloads.w2(r.get('q_w2sq', r.get('q_fit'))):.2f} to the prior"


every = rate if s.state == "running" else min(rate, PAUSED_EVERY)
latent_cloud.forget_sent()  # a full run: the explorer may be new in this browser (sprite sheet, last correction)


def _corr_blobs(corr, xy) -> dict:
    """The last correction's clouds before and after Eq. 10 and its assignment pairs (z_hat_i, T(z_hat_i))."""
    return {"before": xy(corr.before), "after": xy(corr.z), "src": xy(corr.source), "tgt": xy(corr.target)}


@st.fragment(run_every=every)
def live_view() -> None:
    """Polls the sessions; the training threads never touch Streamlit."""
    v = s.view()
    a = abp.view() if abp is not None else None
    st.session_state["redraws"] = st.session_state.get("redraws", 0) + 1
    corr = next((f for f in reversed(v.frames) if f.before is not None), None)
    d = v.live.shape[1]
    placed = projection.place(f"main{v.run}", proj, v.frames[-1].z if len(v.frames) >= 2 else None,
                              {"ours": v.live, "ABP": a.live if a is not None else None}, v.iteration)
    xy, method, linear = placed.transform, placed.method, placed.transform is not None
    state = {"idle": "ready", "running": "training", "paused": "paused", "error": "stopped"}[v.state]
    parts = [f"**{state}** · iteration {v.iteration} · {v.seconds:.1f} s of training · {_rate(v.records)} on "
             f"{s.device.type.upper() if s.device.type == 'cuda' else 'the CPU'}",
             _fit_text(v, "ours"), _fit_text(a, "ABP") if a is not None else ""]
    if v.seconds_to_prior:
        parts.append(f"ours' q(z^K) on the prior (W2 within the band of two prior samples, and g(z^K) explains its "
                     f"images) after **{v.seconds_to_prior:.1f} s**")
    st.markdown(" · ".join(p for p in parts if p))
    with st.container():  # one element whatever it holds: the explorer below keeps its place and is not remounted
        if v.busy > 2:
            st.info(f"iteration {v.iteration + 1} has been running for {v.busy:.0f} s (K = {v.cfg.langevin.steps}, "
                    f"s = {v.cfg.langevin.step_size:g}); Pause cuts it short.")
        for name, m in (("ours", v.message), ("ABP", a.message if a is not None else "")):
            if m:
                st.error(f"{name}: {m}")
    sessions = {"ours": (s, v)} | ({"ABP": (abp, a)} if a is not None else {})
    tok = payloads.token(s, v)
    header = {"mode": "live", "token": tok, "interval": every, "iteration": v.iteration,
              "class_names": payloads.class_names(v.cfg.data.name, v.labels),
              "decodable": linear, "decode_note": payloads.not_decodable(d, method), "plane": method,
              "panels": [{"name": "ours", "title": f"ours (alpha {v.cfg.alpha:g})", "note": f"iteration {v.iteration}"
                          + (f", last correction at {corr.iteration}" if corr else "")}]}
    if a is not None:
        header["panels"].append({"name": "ABP", "title": "ABP (alpha 0)", "note": f"iteration {a.iteration}"})
    blobs = {"z0": placed.xy["ours"], "z1": placed.xy["ABP"], "prior": placed.prior}
    if latent_cloud.once("train", "sprite", tok):
        extra_h, extra_b = payloads.sprite_blobs(s)
        header |= extra_h
        blobs |= extra_b
    if corr is not None and linear:
        header["correction"] = {"iteration": corr.iteration}
        if latent_cloud.once("train", "correction", (tok, method, corr.iteration)):
            blobs |= _corr_blobs(corr, xy)
    elif corr is not None:  # UMAP: the worker places the correction's clouds and pairs a few seconds later
        got = payloads.umap_correction(f"main{v.run}", corr)
        if got is None or got[0]["iteration"] != corr.iteration:
            header["correction_pending"] = corr.iteration
        if got is not None:
            header["correction"] = got[0]
            if latent_cloud.once("train", "correction", (tok, method, got[0]["iteration"])):
                blobs |= got[1]
    if not linear:  # and a pinned point's chain path
        path_h, path_b = payloads.umap_path("train", f"main{v.run}", sessions)
        header |= path_h
        blobs |= path_b
    sent = latent_cloud.show("train", header, blobs, payloads.answer(sessions, xy, method))
    st.session_state["explorer_bytes"] = len(sent)
    marks = st.session_state.get(f"marks:{v.run}", [])
    left, right = st.columns([3, 1])
    with left:
        version = (v.run, v.frames[-1].iteration, a.frames[-1].iteration if a else -1, len(marks))
        if st.session_state.get("curves", (None,))[0] != version:  # new points only every L iterations
            st.session_state["curves"] = (version, payloads.curves({"ours": v} | ({"ABP": a} if a else {}), marks))
        latent_cloud.show("curves", *st.session_state["curves"][1])
    what = "a grid of z in [-2.5, 2.5]^2" if d == 2 else "36 fixed draws z ~ N(0, I)"
    right.image(grids.grid_image(v.samples, 6), width=220, caption=f"ours: g(z) on {what}, iteration "
                f"{v.frames[-1].iteration}")
    bent = (" · on the UMAP plane every point, grey cloud, assignment line end and chain position is the UMAP "
            "image of its latent; UMAP bends space, so the straight lines between them are a guide, not the path "
            "in R^d" if not linear else "")
    st.caption(f"redraw {st.session_state['redraws']} · every {every:g} s · {len(v.frames)} frames kept · "
               f"{len(sent):,} bytes sent to the explorer this redraw" + bent)


live_view()
