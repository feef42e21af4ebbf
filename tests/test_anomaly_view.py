"""The Anomaly page under Streamlit's AppTest (real Streamlit, the shipped detectors): what it decided and why,
blank pages refused, a batch summary and its CSV, your own detector, and hostile uploads that never stop a
batch."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from test_images import hostile_corpus
from ui import warmup
from lvm import data as datasets, pretrained
from lvm.config import DataConfig

APP = str(Path(__file__).resolve().parent.parent / "app.py")
pytestmark = pytest.mark.skipif(pretrained.find("anomaly-4") is None, reason="pretrained/anomaly-4 is missing")


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300).run()
    warmup.join()
    at.switch_page("views/anomaly.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _png(a: np.ndarray, mode: str = "L", fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, format=fmt)
    return buf.getvalue()


def _texts(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def _charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def test_detectors_name_their_held_out_digit_and_their_normal_ones() -> None:
    at = _app()
    pick = at.selectbox(key="model_anom")
    shipped = [(o, float(o.split("AUPRC ")[1].split()[0])) for o in pick.options]
    assert [a for _, a in shipped] == sorted((a for _, a in shipped), reverse=True)  # best first, and open on it
    assert pick.value == pick.options[0] and "chance" in pick.options[0]
    assert all(any(f" · {m} · " in o for m in ("ABP", "VAE", "ours")) for o in pick.options)  # which method it is
    four = next(o for o in pick.options if o.startswith("anomaly-4"))
    assert "holds out 4, normal: 0-3, 5-9" in four
    pick.set_value(four).run()
    assert 'normal** means "one of those nine"' in " ".join(c.value for c in at.caption)
    assert "recall" in _texts(at) and "held-out digit 4" in _texts(at)
    assert len(_charts(at)) == 2  # the histogram and the precision-recall curve, in Plotly
    assert at.radio(key="how:anomaly-4").value == "mnist"  # the MNIST detectors' own preprocessing by default


def test_a_batch_is_scored_explained_summarised_and_downloadable() -> None:
    at = _app()
    at.selectbox(key="model_anom").set_value(next(o for o in at.selectbox(key="model_anom").options
                                                  if o.startswith("anomaly-4"))).run()
    paper = np.full((240, 320), 235, np.uint8)
    paper[60:180, 150:162] = 25  # a dark "1" on paper, off-centre
    rgb = (np.random.RandomState(0).rand(300, 200, 3) * 255).astype(np.uint8)
    seven = (datasets.load(DataConfig("mnist"), "test").x[0, 0].numpy() * 255).round().astype(np.uint8)
    at.file_uploader(key="upload").set_value([
        ("noise.png", _png(rgb, "RGB"), "image/png"),  # no ink in it: refused
        ("seven.png", _png(seven), "image/png"),       # an MNIST test 7, in the training format
        ("broken.png", b"not an image", "image/png"),
        ("paper.jpg", _png(paper, fmt="JPEG"), "image/jpeg"),
        ("blank.png", _png(np.full((480, 640), 250, np.uint8)), "image/png"),
        ("tiny.png", _png(np.full((1, 1), 128, np.uint8)), "image/png"),
    ]).run()
    assert not at.exception
    texts = _texts(at)
    assert "6 uploaded · 2 scored" in texts and "4 refused" in texts
    assert len(at.error) == 1 and at.error[0].value.startswith("broken.png")
    warned = " ".join(w.value for w in at.warning)
    assert all(f"{n}.png: nothing to score" in warned for n in ("blank", "tiny", "noise"))
    assert "verdict at this threshold: **normal**" not in texts.split("blank.png")[1].split("**")[0]
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
    assert captions.count("what the model sees (dark ink inverted)") == 1  # paper.jpg: dark on light
    assert captions.count("where it differs (residual)") == 2
    assert sum(c.startswith("as received") for c in captions) == 5  # the scored and the blank ones
    csv = at.get("download_button")[0].proto
    assert csv.label.startswith("Download the scores")
    at.slider(key="thr:anomaly-4").set_value(at.slider(key="thr:anomaly-4").min).run()
    assert "verdict at this threshold: **anomalous**" in _texts(at) and "2 flagged anomalous" in _texts(at)


def test_none_keeps_the_image_as_it_is() -> None:
    at = _app()
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    at.file_uploader(key="upload").set_value([("bar.png", _png(digit), "image/png")]).run()
    key = next(r.key for r in at.radio if r.key.startswith("how:"))
    at.radio(key=key).set_value("none").run()
    assert not at.exception and "1 scored" in _texts(at)
    assert "squashed" in " ".join(c.value for c in at.caption)


@pytest.mark.slow
def test_hostile_uploads_are_each_named_and_never_stop_the_batch() -> None:
    """60 files (every mode and format, truncated, disguised, 16-bit, animated, 1 x 1, header-only bombs up to
    65,535 x 65,535, text, HTML, PDF, ZIP) through the uploader in one batch, with a real digit among them."""
    good, bad = hostile_corpus()
    paper = np.full((240, 320), 235, np.uint8)
    paper[60:180, 150:162] = 25
    files = {**good, **bad, "digit.jpg": _png(paper, fmt="JPEG")}
    assert len(files) >= 30
    at = _app()
    at.file_uploader(key="upload").set_value([(n, d, "image/png") for n, d in files.items()]).run()
    assert not at.exception, [e.value for e in at.exception]
    named = " ".join(e.value for e in at.error) + " " + " ".join(w.value for w in at.warning) + " " + _texts(at)
    for name in files:
        assert name in named, name  # scored (its markdown), refused or unreadable (a message naming it)
    for e in at.error:
        assert "\n" not in e.value and len(e.value) < 400 and "Traceback" not in e.value
    for name in bad:
        assert any(e.value.startswith(name + ":") for e in at.error), name
    summary = next(m.value for m in at.markdown if "uploaded ·" in m.value)
    assert summary.startswith(f"**{len(files)} uploaded")
    assert "digit.jpg**  \nverdict at this threshold" in _texts(at)  # the rest of the batch still scored
    print("uploader corpus:", summary)
    for name in files:
        err = next((e.value for e in at.error if e.value.startswith(name + ":")), None)
        warn = next((w.value for w in at.warning if w.value.startswith(name + ":")), None)
        print(f"  {name}: {err or warn or 'scored'}")


def test_your_own_detector_folder_is_offered_and_uses_its_recorded_preprocessing(tmp_path) -> None:
    from lvm.commands import REFERENCE, reference

    own = tmp_path / "mine"
    own.mkdir()
    shutil.copy(pretrained.find("anomaly-4").path(), own / "checkpoint.pt")  # what `lvm anomaly --out` leaves
    normal = np.random.RandomState(0).normal(100.0, 10.0, 50)
    (own / REFERENCE).write_text(json.dumps(reference(normal, 0.1, test_steps=20, preprocess="center-crop")))
    at = _app()
    at.text_input(key="own_dir").set_value(str(tmp_path / "elsewhere")).run()
    assert "no such folder" in at.error[0].value and not at.exception
    (tmp_path / "empty").mkdir()
    at.text_input(key="own_dir").set_value(str(tmp_path / "empty")).run()
    assert "has no checkpoint.pt" in at.error[0].value and "lvm anomaly --data folder" in at.error[0].value
    at.text_input(key="own_dir").set_value(str(own)).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="model_anom").value.startswith("your detector")  # shown as soon as it is given
    assert "50 of your normal images" in " ".join(c.value for c in at.caption)
    assert at.slider[0].value == pytest.approx(np.quantile(normal, 0.9), rel=1e-6)  # its own false-alarm rate
    assert at.radio(key="how:your detector").value == "center-crop"  # what its reference records
    at.file_uploader(key="upload").set_value([("white.png", _png(np.full((28, 28), 255, np.uint8)), "image/png"),
                                              ("bar.png", _png(np.eye(28, dtype=np.uint8) * 255), "image/png")])
    at.run()
    texts = _texts(at)
    assert "bar.png" in texts and "false alarms" in texts and "verdict at this threshold" in texts
    assert any(w.value.startswith("white.png: nothing to score") for w in at.warning)


def test_a_detector_at_or_below_chance_is_flagged() -> None:
    at = _app()
    pick = at.selectbox(key="model_anom")
    worst = pick.options[-1]
    a, c = (float(worst.split(k)[1].split()[0].strip("()")) for k in ("AUPRC ", "chance "))
    pick.set_value(worst).run()
    assert not at.exception
    assert (a <= c) == any("no better than chance" in w.value for w in at.warning)


# ---------------------------------------------------------------- in Chromium: what a practitioner sees
@pytest.fixture(scope="module")
def browser_page():
    from app_server import ARGS, CHROMIUM, skip_without_browser, streamlit_app, sync_playwright

    skip_without_browser()
    with streamlit_app() as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.get_by_role("link", name="Anomaly").first.click()
        page.get_by_role("heading", name="Anomaly").first.wait_for()
        yield page
        browser.close()


def _photos(tmp: Path) -> dict[str, Path]:
    """Phone-like photos (experiments.photo_evidence.photo) of an MNIST test 7 (normal for anomaly-4), of a 4 (its
    held-out digit), of a blank page, and scikit-learn's first 8 x 8 digit."""
    from experiments.photo_evidence import photo
    from sklearn.datasets import load_digits

    test = datasets.load(DataConfig("mnist"), "test")
    rs = np.random.RandomState(3)
    seven, four = (test.x[int(np.flatnonzero(test.y.numpy() == k)[0]), 0].numpy() for k in (7, 4))
    out = {"normal": tmp / "photo-of-a-7.jpg", "held": tmp / "photo-of-a-4.jpg", "blank": tmp / "blank-page.jpg",
           "sklearn": tmp / "sklearn-0.png"}
    out["normal"].write_bytes(photo(seven, rs))
    out["held"].write_bytes(photo(four, rs))
    out["blank"].write_bytes(photo(np.zeros((28, 28), np.float32), rs))
    Image.fromarray((load_digits().images[0] * 255 / 16).astype(np.uint8)).save(out["sklearn"])
    return out


@pytest.mark.browser
@pytest.mark.slow
def test_photos_blank_pages_and_a_batch_in_chromium(browser_page, tmp_path) -> None:
    page, shots = browser_page, Path(__import__("os").environ.get("LVM_SCREENSHOTS") or tmp_path)
    files = _photos(tmp_path)
    page.get_by_text("Trained on MNIST digits 0-3, 5-9 only").first.wait_for()  # anomaly-4, the best, opens
    upload = page.locator("input[type=file]")
    for key, expect in (("blank", "nothing to score"), ("normal", "verdict at this threshold"),
                        ("held", "verdict at this threshold")):
        upload.set_input_files(str(files[key]))
        page.get_by_text(expect).first.wait_for()
        page.wait_for_timeout(1500)  # the charts settle
        page.screenshot(path=str(shots / f"anomaly-{key}.png"), full_page=True)
        print(key, " ".join(page.locator("[data-testid=stMainBlockContainer]").inner_text().split())[-700:])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    upload.set_input_files([str(files["sklearn"]), str(tmp_path / "broken.png")])  # added to the three above
    page.get_by_text("5 uploaded").first.wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(shots / "anomaly-batch.png"), full_page=True)
    summary = page.get_by_text("5 uploaded").first.inner_text()
    print("batch:", summary)
    assert "3 scored" in summary and "2 refused" in summary

    # a click on the precision-recall curve sets the threshold
    slider = page.get_by_test_id("stSlider").first
    before = slider.get_by_test_id("stSliderThumbValue").inner_text()
    curve = page.locator(".js-plotly-plot").nth(1)
    curve.scroll_into_view_if_needed()
    points = curve.locator(".scatterlayer .trace").first.locator("path.point")
    box = points.nth(points.count() // 3).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("(b) => { const t = document.querySelector('[data-testid=stSliderThumbValue]');"
                           " return t && t.innerText !== b; }", arg=before)
    after = slider.get_by_test_id("stSliderThumbValue").inner_text()
    print("threshold", before, "->", after)
    page.screenshot(path=str(shots / "anomaly-pr-click.png"), full_page=True)
