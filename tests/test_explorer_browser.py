"""The explorer (ui/components/latent_cloud) in Debian's Chromium against a real `streamlit run app.py`.

The cloud is a canvas inside the component (no iframe, no picture of a cloud); its pixels change while training;
hovering a known point shows that point's training image; clicking a point pins it with its reconstruction;
clicking the empty plane shows a decoded image; the wheel zooms and a double-click resets; Latent & OT's replay
plays in the browser; d = 16 with UMAP shows the UMAP plane inside the running app. No request leaves this
machine and the page logs no console error. Screenshots go to $LVM_SCREENSHOTS (default: pytest's tmp dir).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from app_server import ARGS, CHROMIUM, MISSING, skip_without_browser, streamlit_app, sync_playwright

skip_without_browser()
pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the k-th cloud explorer of the page (the curves are not counted), as its JS instance
LC = ("(k) => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stBidiComponentIsolated]')]"
      ".map(e => e.shadowRoot && e.shadowRoot.querySelector('.lc-root')).filter(r => r && r.lc && r.lc.plane)"
      ".map(r => r.lc)[k] || null")
PIXELS = f"() => ({LC})(0).plane.canvas.toDataURL()"


def _outside(url: str) -> bool:
    host = url.split("/")[2].split(":")[0] if "://" in url else ""
    return url.startswith(("http:", "https:", "ws:", "wss:")) and host not in ("127.0.0.1", "localhost", "[::1]")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("LVM_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser_page():
    assert not MISSING, f"CI=true but {MISSING} missing"
    with streamlit_app() as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.set_default_timeout(90_000)
        outside, errors = [], []
        page.on("request", lambda r: outside.append(r.url) if _outside(r.url) else None)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.browser_ = browser  # for a second, touch-screen page
        yield page, outside, errors
        browser.close()
    assert not outside, f"requests that left the machine: {sorted(set(outside))}"
    assert not errors, f"console errors: {errors}"


def _go(page, name: str) -> None:
    page.get_by_role("link", name=name).first.click()
    page.get_by_role("heading", name=name).first.wait_for()


def _isolated_point(page, gap: float = 12) -> dict:
    """The point of ours' panel farthest from its nearest neighbour, if over `gap` px away, and where it is on
    the screen."""
    return page.evaluate(f"""(gap) => {{
        const lc = ({LC})(0), pl = lc.plane, r = pl.layout()[0], pos = pl.panels[0].pos, b = pl.canvas.getBoundingClientRect();
        const xy = []; for (let i = 0; i < pos.length / 2; i++) xy.push(pl.toScreen(r, pos[2 * i], pos[2 * i + 1]));
        let best = null;
        xy.forEach(([x, y], i) => {{
            if (x < r.x + 20 || x > r.x + r.w - 20 || y < r.y + 20 || y > r.y + r.h - 20) return;
            let near = Infinity; xy.forEach(([u, v], j) => {{ if (j !== i) near = Math.min(near, Math.hypot(u - x, v - y)); }});
            if (near >= gap && (!best || near > best.near)) best = {{i, x: b.left + x, y: b.top + y, near}};
        }});
        return best;
    }}""", gap)


def _idle(page) -> None:
    page.wait_for_function(f"() => ({LC})(0)?.plane.panels.every(p => !p.segs || !p.segs.length)", timeout=30_000)


def test_train_explorer_animates_hovers_pins_decodes_and_zooms(browser_page, shots: Path) -> None:
    page, _, _ = browser_page
    _go(page, "Train")
    page.wait_for_function(f"() => ({LC})(0) && ({LC})(0)?.plane.panels.length > 0")
    assert page.locator("[data-testid=stMain] iframe").count() == 0  # mounted in the page itself
    assert page.locator("[data-testid=stBidiComponentIsolated] canvas[data-testid=latent-cloud-canvas]").count() == 1
    images = page.locator("[data-testid=stMain] [data-testid=stImage] img")
    images.first.wait_for(timeout=60_000)  # the decoded grid may land a redraw after the explorer
    assert images.count() == 1 and "g(z)" in page.locator("[data-testid=stMain] [data-testid=stImage]").inner_text()

    page.get_by_role("button", name="Start").click()
    page.wait_for_function(f"() => +({LC})(0)?.root.dataset.iteration >= 3")
    a = page.evaluate(PIXELS)
    t0 = time.monotonic()  # the cloud moves while training: within a second here, give a busy machine five
    while page.evaluate(PIXELS) == a and time.monotonic() - t0 < 5.0:
        time.sleep(0.1)
    assert page.evaluate(PIXELS) != a, "the cloud did not move in 5 s of training"
    page.get_by_text("slow motion", exact=True).click()
    page.wait_for_function(f"() => (({LC})(0)?.plane.panels[0].label || '').startsWith('correction')", timeout=120_000)
    page.screenshot(path=str(shots / "explorer_train_correction.png"))
    page.get_by_text("slow motion", exact=True).click()

    page.get_by_role("button", name="Pause").click()
    page.wait_for_function("() => document.body.innerText.includes('paused ·')")
    time.sleep(1.5)  # the last redraw of the run lands
    _idle(page)
    pt = _isolated_point(page)
    assert pt is not None
    page.mouse.move(pt["x"] + 40, pt["y"] + 40)
    page.mouse.move(pt["x"], pt["y"])
    tip = page.locator("[data-testid=latent-cloud-tip]")
    tip.wait_for(state="visible", timeout=5_000)
    assert tip.get_attribute("data-index") == str(pt["i"])
    text = tip.inner_text()
    index = int(text.split("image #")[1].split()[0])
    thumb = page.evaluate(f"""() => {{ const c = ({LC})(0).plane.tipImg; const d = c.getContext('2d').getImageData(0, 0, 84, 84).data;
        const out = []; for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) out.push(d[((3 * y + 1) * 84 + 3 * x + 1) * 4]);
        return out; }}""")
    from lvm.data import load
    from lvm.presets import DEMO

    want = load(DEMO.data, "train").x[index, 0].numpy() * 255
    assert np.abs(np.array(thumb, float).reshape(28, 28) - want).max() <= 2  # that training image, pixel for pixel
    assert ("digit 0" in text or "digit 1" in text) and text.startswith("ours")
    page.screenshot(path=str(shots / "explorer_hover.png"))

    page.mouse.click(pt["x"], pt["y"])  # pin it: the image, its reconstruction, its chain's path
    page.locator("[data-testid=latent-cloud-recon]").wait_for(state="visible", timeout=30_000)
    assert "pinned: ours" in page.locator("[data-testid=latent-cloud-inspector]").inner_text()
    page.screenshot(path=str(shots / "explorer_inspector.png"))

    corner = page.evaluate(f"""() => {{ const pl = ({LC})(0).plane, r = pl.layout()[0], b = pl.canvas.getBoundingClientRect();
        return [b.left + r.x + 12, b.top + r.y + 30]; }}""")
    assert page.evaluate(f"() => ({LC})(0).plane.nearest({corner[0]} - ({LC})(0).plane.canvas.getBoundingClientRect().left,"
                         f" {corner[1]} - ({LC})(0).plane.canvas.getBoundingClientRect().top, 7)") is None
    page.mouse.click(*corner)
    decoded = page.locator("[data-testid=latent-cloud-decoded]")
    decoded.wait_for(state="visible", timeout=30_000)
    page.wait_for_function(f"() => {{ const i = ({LC})(0)?.inspector.querySelector('img'); return i && i.complete && i.naturalWidth === 28; }}")
    assert "g(z) at z = (" in page.locator("[data-testid=latent-cloud-inspector]").inner_text()
    page.screenshot(path=str(shots / "explorer_decoded.png"))

    half = page.evaluate(f"() => ({LC})(0).plane.half()")
    box = page.evaluate(f"() => {{ const b = ({LC})(0).plane.canvas.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; }}")
    page.mouse.move(box[0] + box[2] / 4, box[1] + box[3] / 2)
    page.mouse.wheel(0, -600)
    page.wait_for_function(f"(h) => ({LC})(0)?.plane.half() < 0.6 * h", arg=half)  # the visible range shrank
    page.mouse.dblclick(box[0] + box[2] / 4, box[1] + box[3] / 2)
    page.wait_for_function(f"(h) => Math.abs(({LC})(0)?.plane.half() - h) < 0.05 * h", arg=half)  # and came back


# dark pixels of a canvas as it shows on the page's white (its pixels are RGBA): points, lines, ticks, labels
DARK = ("(cv) => { const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data; let n = 0;"
        " for (let i = 0; i < d.length; i += 4) { const a = d[i + 3] / 255;"
        " if (3 * 255 - a * (3 * 255 - d[i] - d[i + 1] - d[i + 2]) < 600) n++; } return n; }")
CURVES = ("() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stBidiComponentIsolated]')]"
          ".map(e => e.shadowRoot && e.shadowRoot.querySelector('canvas[data-testid=latent-curves-canvas]'))"
          ".find(c => c)")


def _dark(page) -> tuple[float, float]:
    """The share of dark pixels of the cloud's canvas and of the curves' canvas."""
    return tuple(page.evaluate(f"() => [({LC})(0).plane.canvas, ({CURVES})()]"
                               f".map(cv => ({DARK})(cv) / (cv.width * cv.height))"))


def test_projector_mode_draws_the_same_view_thicker_and_larger_and_keeps_zoom_and_pin(browser_page, shots) -> None:
    """The sidebar's projector toggle reaches the canvases (thick points and lines, large type: many more dark
    pixels for the same frame) without remounting the explorer: the zoom and the pinned point stay."""
    page, _, _ = browser_page
    _go(page, "Train")
    page.wait_for_function(f"() => ({LC})(0)?.plane.panels[0]?.pos && ({CURVES})()")
    if "training · iteration" in page.inner_text("body"):
        page.get_by_role("button", name="Pause").click()
        page.wait_for_function("() => document.body.innerText.includes('paused ·')")
        time.sleep(1.5)  # the last redraw of the run lands
    _idle(page)
    pt = _isolated_point(page, 6)
    page.mouse.click(pt["x"], pt["y"])
    page.locator("[data-testid=latent-cloud-recon]").wait_for(state="visible", timeout=30_000)
    page.mouse.move(pt["x"], pt["y"])
    page.mouse.wheel(0, -150)  # zoom in about the pinned point
    page.wait_for_function(f"() => ({LC})(0)?.plane.zoom > 1.1")
    page.evaluate(f"() => {{ ({LC})(0).marker = 'this instance'; }}")
    page.mouse.move(5, 5)  # no tooltip over the canvas
    time.sleep(1)
    half, off = page.evaluate(f"() => ({LC})(0).plane.half()"), _dark(page)

    page.get_by_text("Projector mode", exact=True).click()
    page.wait_for_function(f"() => ({LC})(0)?.root.dataset.look === 'projector'")
    time.sleep(1)  # a redraw with the new look (the curves redraw with their next packet)
    on = _dark(page)
    page.screenshot(path=str(shots / "explorer_projector.png"))
    kept = page.evaluate(f"() => {{ const lc = ({LC})(0); return [lc.marker, lc.plane.half(), lc.pin && lc.pin.i]; }}")
    assert kept[0] == "this instance" and abs(kept[1] - half) < 1e-6 * half and kept[2] == pt["i"]  # not remounted
    assert "pinned: ours" in page.locator("[data-testid=latent-cloud-inspector]").inner_text()
    print(f"share of dark pixels (cloud, curves): off {off}, on {on}")
    assert on[0] > 1.4 * off[0] and on[1] > 1.4 * off[1], (off, on)  # the same frame, drawn thicker and larger

    page.get_by_text("Projector mode", exact=True).click()
    page.wait_for_function(f"() => ({LC})(0)?.root.dataset.look === 'normal'")
    time.sleep(1)
    back = _dark(page)
    assert abs(back[0] - off[0]) < 0.15 * off[0], (off, back)  # and back to the ordinary look


def test_a_tap_shows_the_tooltip_and_a_pinch_zooms_on_a_touch_screen(browser_page) -> None:
    page, _, _ = browser_page
    phone = page.browser_.new_context(viewport={"width": 800, "height": 1200}, has_touch=True, is_mobile=True)
    tab = phone.new_page()
    try:
        tab.set_default_timeout(90_000)
        assert "/train" in page.url and "run=" in page.url
        tab.goto(page.url)  # the Train view of the same run (?run=...), as a second device in the lecture hall
        tab.wait_for_function(f"() => ({LC})(0) && ({LC})(0)?.plane.panels.length > 0 && ({LC})(0)?.plane.panels[0].pos")
        _idle(tab)
        pt = _isolated_point(tab, 0)  # a small screen: the tap's radius is larger (16 px)
        tab.touchscreen.tap(pt["x"], pt["y"])
        tab.locator("[data-testid=latent-cloud-tip]").wait_for(state="visible", timeout=10_000)
        half = tab.evaluate(f"() => ({LC})(0).plane.half()")
        tab.evaluate(f"""() => {{ const cv = ({LC})(0).plane.canvas, b = cv.getBoundingClientRect(), cx = b.left + b.width / 4, cy = b.top + b.height / 2;
            const ev = (type, id, x) => cv.dispatchEvent(new PointerEvent(type, {{pointerId: id, pointerType: 'touch', clientX: x, clientY: cy, bubbles: true}}));
            ev('pointerdown', 11, cx - 20); ev('pointerdown', 12, cx + 20);
            for (let k = 1; k <= 10; k++) ev('pointermove', 12, cx + 20 + 10 * k);  // fingers apart: zoom in
            ev('pointerup', 12, cx + 120); ev('pointerup', 11, cx - 20); }}""")
        tab.wait_for_function(f"(h) => ({LC})(0)?.plane.half() < 0.7 * h", arg=half)
    finally:
        phone.close()


def test_latent_ot_replays_every_kept_frame_in_the_browser(browser_page, shots: Path) -> None:
    page, _, _ = browser_page
    _go(page, "Latent & OT")
    page.get_by_role("heading", name="One correction").wait_for()
    page.wait_for_function(f"() => ({LC})(0) && ({LC})(0)?.frames && ({LC})(0)?.frames.length >= 2")
    t0 = page.evaluate(f"() => ({LC})(0).t")
    page.wait_for_function(f"(t) => ({LC})(0)?.t !== t", arg=t0)  # it plays from the first frame, by itself
    page.screenshot(path=str(shots / "explorer_latent_ot.png"), full_page=True)
    page.get_by_test_id("latent-cloud-play").first.click()  # pause, then scrub to the last frame
    n = page.evaluate(f"() => ({LC})(0).frames.length")
    page.locator("[data-testid=latent-cloud-scrubber]").first.fill(str(n - 1))
    page.wait_for_function(f"(n) => ({LC})(0)?.t === n - 1", arg=n)


def test_d16_with_umap_shows_the_umap_plane_in_the_running_app(browser_page, shots: Path) -> None:
    """UMAP's fit and first transforms take minutes on 2 busy cores: generous timeouts (the benchmark times it)."""
    page, _, _ = browser_page
    page.set_default_timeout(300_000)
    _go(page, "Train")
    page.get_by_text("Data, model and schedule").click()
    d = page.get_by_label("latent size d")
    d.fill("16")
    d.press("Enter")
    page.get_by_text("umap", exact=True).click()
    page.get_by_role("button", name="Reset").click()
    page.wait_for_function("() => document.body.innerText.includes('ready · iteration 0')")
    # the new run has d = 16 (a fresh page is at iteration 0 before the Reset lands too): its first plane, before
    # a frame to fit on, is the first two coordinates
    page.wait_for_function(f"() => ({LC})(0)?.root.dataset.plane === 'first two coordinates'", timeout=60_000)
    page.get_by_role("button", name="Start").click()
    page.wait_for_function("() => document.body.innerText.includes('training · iteration')")
    page.wait_for_function(f"() => ({LC})(0) && ({LC})(0)?.root.dataset.plane === 'umap'", timeout=600_000, polling=1000)
    time.sleep(2)
    page.screenshot(path=str(shots / "explorer_umap_d16.png"))
    corner = page.evaluate(f"""() => {{ const pl = ({LC})(0).plane, r = pl.layout()[0], b = pl.canvas.getBoundingClientRect();
        return [b.left + r.x + 6, b.top + r.y + 6]; }}""")
    page.mouse.click(*corner)  # a UMAP plane is not linear: a click says so instead of decoding
    assert "No decode on the UMAP plane" in page.locator("[data-testid=latent-cloud-inspector]").inner_text()
    # the worker also places the last correction (grey cloud, assignment lines) and a pinned point's chain path
    page.wait_for_function(f"() => {{ const lc = ({LC})(0); return lc?.root.dataset.plane === 'umap' && lc.before"
                           " && lc.src && lc.src.length === lc.tgt.length && lc.before.length === lc.after.length; }",
                           polling=1000)
    page.get_by_role("button", name="Pause").click()
    page.wait_for_function("() => document.body.innerText.includes('paused ·')")
    time.sleep(1.5)
    _idle(page)
    pt = _isolated_point(page, 0)
    page.mouse.click(pt["x"], pt["y"])
    page.wait_for_function(f"() => ({LC})(0)?.pin?.path?.length >= 4", polling=500)  # two kept frames or more
    page.screenshot(path=str(shots / "explorer_umap_d16_pinned.png"))
