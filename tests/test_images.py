"""User images: every common mode becomes a (C, H, W) tensor in [0, 1]; bad files name themselves."""
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lvm.images import MAX_BYTES, ImageError, read_image, read_image_file


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "1"])
def test_every_mode_converts_to_model_input(mode):
    a = (np.indices((40, 50)).sum(0) % 256).astype(np.uint8)
    img = Image.fromarray(a).convert(mode) if mode != "I;16" else Image.fromarray(a.astype(np.uint16) * 256)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    x = read_image(_png(img, fmt), f"x.{fmt.lower()}", 28, 1)
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert float(x.std()) > 0.01  # the content survived the conversion


def test_grey_values_are_kept():
    a = np.full((28, 28), 51, np.uint8)
    x = read_image(_png(Image.fromarray(a)), "grey.png", 28, 1)
    assert torch.allclose(x, torch.full_like(x, 51 / 255))


def test_rgb_output_and_transparency_goes_black():
    img = Image.new("RGBA", (10, 10), (255, 255, 255, 0))
    x = read_image(_png(img), "clear.png", 32, 3)
    assert x.shape == (3, 32, 32) and float(x.max()) == 0.0


@pytest.mark.parametrize("data,problem", [
    (b"", "empty"),
    (b"<html><body>hi</body></html>", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image"),
    (b"x" * (MAX_BYTES + 1), "limit"),
])
def test_bad_files_are_named_errors(data, problem):
    with pytest.raises(ImageError) as e:
        read_image(data, "upload.png", 28, 1)
    assert "upload.png" in str(e.value) and problem in str(e.value)


def test_truncated_png_is_refused():
    data = _png(Image.fromarray((np.random.RandomState(0).rand(64, 64) * 255).astype(np.uint8)))
    with pytest.raises(ImageError, match="cut.png"):
        read_image(data[: len(data) // 2], "cut.png", 28, 1)


# ---------------------------------------------------------------- a corpus of hostile and extreme files
def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and carries almost no data (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def hostile_corpus() -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(files that must be read, files that must be refused), 50+ in all."""
    rs = np.random.RandomState(0)
    grad = (np.indices((60, 80)).sum(0) * 2 % 256).astype(np.uint8)
    rgb = np.stack([grad, grad[::-1], 255 - grad], axis=-1)
    good: dict[str, bytes] = {}
    for mode in ["L", "LA", "P", "RGB", "RGBA", "1", "I", "F"]:
        img = Image.fromarray(rgb).convert(mode) if mode not in ("I", "F") else Image.fromarray(grad.astype(np.int32) * 100).convert(mode)
        good[f"mode-{mode}.{'tiff' if mode in ('I', 'F') else 'png'}"] = _save(img, "TIFF" if mode in ("I", "F") else "PNG")
    good["mode-I16.png"] = _save(Image.fromarray(grad.astype(np.uint16) * 257), "PNG")
    good["mode-CMYK.jpg"] = _save(Image.fromarray(rgb).convert("CMYK"), "JPEG")
    good["mode-CMYK.tiff"] = _save(Image.fromarray(rgb).convert("CMYK"), "TIFF")
    pal = Image.fromarray(grad).convert("P")
    good["palette-transparent.png"] = _save(pal, "PNG", transparency=0)
    for fmt, ext in [("JPEG", "jpg"), ("BMP", "bmp"), ("WEBP", "webp"), ("TIFF", "tif"), ("PPM", "ppm"),
                     ("TGA", "tga"), ("ICO", "ico"), ("GIF", "gif")]:
        good[f"format.{ext}"] = _save(Image.fromarray(rgb), fmt)
    good["progressive.jpg"] = _save(Image.fromarray(rgb), "JPEG", progressive=True, quality=30)
    good["grey.jpg"] = _save(Image.fromarray(grad), "JPEG")
    frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (0, 128, 255)]
    good["animated.gif"] = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    good["animated.png"] = _save(frames[0], "PNG", save_all=True, append_images=frames[1:])
    good["multipage.tiff"] = _save(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    for w, h in [(1, 1), (1, 500), (500, 1), (3000, 2000)]:
        good[f"size-{w}x{h}.png"] = _save(Image.fromarray((rs.rand(h, w) * 255).astype(np.uint8)), "PNG")
    good["black.png"] = _save(Image.new("L", (28, 28), 0), "PNG")
    good["white.png"] = _save(Image.new("L", (28, 28), 255), "PNG")
    good["flat-I16.png"] = _save(Image.fromarray(np.full((28, 28), 700, np.uint16)), "PNG")
    good["clear-rgba.png"] = _save(Image.new("RGBA", (28, 28), (255, 0, 0, 0)), "PNG")
    good["wrong-extension.jpg"] = _save(Image.fromarray(grad), "PNG")
    good["no-end-chunk.png"] = _save(Image.fromarray(grad), "PNG")[:-12]  # IEND missing, pixels whole
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated
    good["exif-rotated.jpg"] = _save(Image.fromarray(rgb), "JPEG", exif=exif)

    png = _save(Image.fromarray((rs.rand(64, 64) * 255).astype(np.uint8)), "PNG")
    jpg = _save(Image.fromarray((rs.rand(64, 64, 3) * 255).astype(np.uint8)), "JPEG")
    bad: dict[str, bytes] = {
        "empty.png": b"",
        "one-byte.png": b"\x89",
        "random-100.png": rs.bytes(100),
        "random-10k.jpg": rs.bytes(10_000),
        "page.png": b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        "drawing.png": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "notes.png": b"just some text\n" * 20,
        "doc.png": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "archive.png": b"PK\x03\x04" + rs.bytes(200),
        "script.jpg": b"#!/bin/sh\nrm -rf /\n",
        "png-signature-only.png": b"\x89PNG\r\n\x1a\n",
        "gif-header-only.gif": b"GIF89a",
        "jpeg-soi-only.jpg": b"\xff\xd8\xff",
        "jpeg-garbage.jpg": b"\xff\xd8\xff\xe0" + rs.bytes(300),
        "truncated-half.png": png[: len(png) // 2],
        "truncated-tail.png": png[:-200],
        "truncated-half.jpg": jpg[: len(jpg) // 3],
        "bomb-7000x7000.png": _png_header_only(7_000, 7_000),        # over our cap, under PIL's
        "bomb-20000x20000.png": _png_header_only(20_000, 20_000),    # 400 M pixels: refused on the header
        "bomb-30000x30000.png": _png_header_only(30_000, 30_000),    # over PIL's cap too
        "bomb-65535x65535.png": _png_header_only(65_535, 65_535),
        "gif-huge-screen.gif": b"GIF89a\xff\xff\xff\xff\x00\x00\x00" + b"\x00" * 20,
        "too-large.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_BYTES,
        "nul-bytes.png": b"\x00" * 4096,
    }
    return good, bad


def testhostile_corpus_goes_through_the_apps_reader():
    good, bad = hostile_corpus()
    assert len(good) + len(bad) >= 50
    for name, data in good.items():  # read, converted, bounded; never an exception
        for size, ch in [(28, 1), (32, 3)]:
            x = read_image(data, name, size, ch)
            assert x.shape == (ch, size, size) and x.dtype == torch.float32, name
            assert bool(torch.isfinite(x).all()) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0, name
    for name, data in bad.items():   # a one-line message naming the file, and nothing else escapes
        with pytest.raises(ImageError) as e:
            read_image(data, name, 28, 1)
        msg = str(e.value)
        assert msg.startswith(name + ":") and "\n" not in msg and len(msg) < 300, (name, msg)
        if name.startswith("bomb"):
            assert "pixel limit" in msg, msg


def test_phone_photos_are_read_upright():
    a = np.zeros((20, 40), dtype=np.uint8)
    a[:, :10] = 255  # a white band on the left of a landscape picture
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": how phones store a portrait shot
    Image.fromarray(a).save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    x = read_image(buf.getvalue(), "phone.jpg", 28, 1)[0]
    assert x[:5].mean() > 0.9 and x[-5:].mean() < 0.1  # the band is now on top: rotated as the viewer sees it


def test_a_folder_where_an_image_is_expected_says_so(tmp_path):
    with pytest.raises(ImageError, match="a folder"):
        read_image_file(tmp_path, 28, 1)


# ---------------------------------------------------------------- preparation: what `lvm score` and the app share
from lvm import pretrained  # noqa: E402
from lvm.config import InferenceConfig  # noqa: E402
from lvm.images import image_paths, prepare, preprocessing_for  # noqa: E402


def test_auto_preprocessing_follows_what_the_detector_was_trained_on():
    assert preprocessing_for("mnist", 28, 1) == "mnist"
    assert preprocessing_for("folder", 28, 1) == "center-crop"   # lvm.data's folder loader
    assert preprocessing_for("fashion", 28, 1) == "none"
    assert preprocessing_for("mnist", 32, 3) == "none"
    assert preprocessing_for("mnist", 28, 1, recorded="none") == "none"  # what the detector records wins
    with pytest.raises(ValueError, match="28 x 28 grey"):
        prepare(_png(Image.new("L", (40, 40), 0)), "x.png", 32, 3, "mnist")


@pytest.mark.parametrize("how", ["mnist", "center-crop", "none"])
def test_blank_images_are_refused_with_a_reason_in_every_preprocessing(how):
    for img in (Image.new("L", (640, 480), 250), Image.new("L", (1, 1), 128), Image.new("RGB", (28, 28))):
        p = prepare(_png(img), "blank.png", 28, 1, how)
        assert p.x is None and "nothing to score" in p.refused and "blank" in p.refused


def test_a_small_scan_is_scored_with_a_warning():
    a = np.zeros((8, 8), np.uint8)
    a[1:7, 3:5] = 255  # an 8 x 8 "1", as scikit-learn's digits are
    for how in ("none", "mnist"):
        p = prepare(_png(Image.fromarray(a)), "small.png", 28, 1, how)
        assert p.x is not None and p.x.shape == (1, 28, 28) and not p.refused
        assert "upscal" in p.warning, (how, p.warning)


def test_dark_ink_on_a_transparent_canvas_is_read_on_white_and_inverted():
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    img.paste((0, 0, 0, 255), (90, 40, 110, 160))  # a black bar drawn on nothing
    p = prepare(_png(img), "drawn.png", 28, 1, "mnist")
    assert p.x is not None and p.inverted and float(p.x.max()) == 1.0 and float(p.x[0, 0, 0]) == 0.0


def test_a_large_jpeg_is_decoded_reduced():
    big = Image.fromarray((np.random.RandomState(0).rand(3000, 4000) * 255).astype(np.uint8))
    p = prepare(_png(big, "JPEG"), "big.jpg", 28, 1, "none")
    assert p.size[0] <= 1024 and p.size[1] <= 1024 and max(p.received.shape) <= 256


def test_empty_folders_and_unmatched_patterns_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    files, problems = image_paths([str(tmp_path / "empty"), str(tmp_path / "notes"), str(tmp_path / "*.png")])
    assert files == [] and len(problems) == 3
    assert "empty folder" in problems[0] and "no images" in problems[1] and "no file matches" in problems[2]


@pytest.mark.skipif(pretrained.find("anomaly-4") is None, reason="pretrained/anomaly-4 is missing")
def test_lvm_score_refuses_a_blank_page_and_scores_a_photo_of_a_digit(tmp_path):
    from lvm.scoring import score

    Image.new("L", (640, 480), 245).save(tmp_path / "blank.png")
    page = np.full((300, 400), 230, np.uint8)
    page[80:220, 190:205] = 30  # a dark "1" on paper, off-centre in a landscape photo
    Image.fromarray(page).save(tmp_path / "one.jpg")
    (tmp_path / "empty").mkdir()
    entry = pretrained.find("anomaly-4")
    out = score(str(entry.path()), [str(tmp_path / "blank.png"), str(tmp_path / "one.jpg"), str(tmp_path / "empty")],
                InferenceConfig(steps=20), reference_path=str(entry.path("test_scores")))
    assert out["preprocess"] == "mnist"  # an MNIST detector's own, without being asked
    rows = {Path(r["image"]).name: r for r in out["scores"]}
    assert rows["blank.png"]["verdict"] == "refused" and "blank" in rows["blank.png"]["refused"]
    assert "score" not in rows["blank.png"]
    assert np.isfinite(rows["one.jpg"]["score"]) and rows["one.jpg"]["verdict"] in ("normal", "anomalous")
    assert "empty folder" in rows["empty"]["error"]


def test_shipped_detectors_record_the_preprocessing_they_were_trained_with():
    detectors = [e for e in pretrained.available() if e.has("test_scores")]
    assert detectors and all(e.manifest.get("preprocess") == "mnist" for e in detectors)


def _copy_detector(tmp_path, manifest_update: dict, drop: tuple[str, ...] = ()) -> Path:
    import json
    import shutil

    entry = pretrained.find("anomaly-4")
    folder = tmp_path / "detector"
    shutil.copytree(entry.folder, folder)
    man = json.loads((folder / "manifest.json").read_text()) | manifest_update
    for k in drop:
        man.pop(k, None)
    (folder / "manifest.json").write_text(json.dumps(man))
    return folder / "checkpoint.pt"


@pytest.mark.skipif(pretrained.find("anomaly-4") is None, reason="pretrained/anomaly-4 is missing")
def test_lvm_score_applies_the_preprocessing_the_manifest_records(tmp_path):
    """The manifest's "preprocess" decides (a detector saying "none" scores the image squashed as it is); an old
    manifest without the field still gets mnist (its data is MNIST)."""
    from lvm.scoring import score

    page = np.full((300, 400), 230, np.uint8)
    page[60:200, 250:262] = 30  # a dark "1" on paper, off-centre
    Image.fromarray(page).save(tmp_path / "one.png")
    runs = {}
    for name, update, drop in (("none", {"preprocess": "none"}, ()), ("old", {}, ("preprocess",)),
                               ("mnist", {"preprocess": "mnist"}, ())):
        ckpt = _copy_detector(tmp_path / name, update, drop)
        runs[name] = score(str(ckpt), [str(tmp_path / "one.png")], InferenceConfig(steps=20),
                           reference_path=str(ckpt.parent / "test_scores.npz"))
    assert [runs[k]["preprocess"] for k in ("none", "old", "mnist")] == ["none", "mnist", "mnist"]
    assert runs["old"]["scores"][0]["score"] == runs["mnist"]["scores"][0]["score"]
    assert runs["none"]["scores"][0]["score"] != runs["mnist"]["scores"][0]["score"]


@pytest.mark.skipif(pretrained.find("anomaly-4") is None, reason="pretrained/anomaly-4 is missing")
def test_a_manifest_naming_another_score_changes_what_lvm_score_and_lvm_anomaly_compute(tmp_path):
    """A detector whose manifest names "joint-zlib" is scored with it (lvm.scores.for_detector), by `lvm score`
    and by `lvm anomaly`; a manifest naming none keeps the paper's -log p(x, z) (today's detectors)."""
    from lvm import commands, scores
    from lvm.scoring import score

    page = np.full((300, 400), 230, np.uint8)
    page[60:200, 250:262] = 30
    Image.fromarray(page).save(tmp_path / "one.png")
    inference = InferenceConfig(steps=10, n=40)
    out, anomaly = {}, {}
    for name, update in (("joint", {}), ("joint-zlib", {"score": {"name": "joint-zlib"}})):
        ckpt = _copy_detector(tmp_path / name, update, drop=() if update else ("score",))
        out[name] = score(str(ckpt), [str(tmp_path / "one.png")], inference)
        anomaly[name] = commands.anomaly(4, inference, checkpoint_path=str(ckpt))
    assert out["joint"]["score"] == anomaly["joint"]["score"] == "joint"
    assert out["joint-zlib"]["score"] == anomaly["joint-zlib"]["score"] == "joint-zlib"
    entry = pretrained.find("anomaly-4")
    cfg, gen, _ = entry.load()
    x = prepare((tmp_path / "one.png").read_bytes(), "one.png", 28, 1, "mnist").x[None]
    lcfg = inference.langevin(cfg.langevin)
    want = scores.compute("joint-zlib", gen, x, lcfg)[0]
    assert out["joint-zlib"]["scores"][0]["score"] == pytest.approx(want, rel=1e-6)
    assert out["joint-zlib"]["scores"][0]["score"] != pytest.approx(out["joint"]["scores"][0]["score"], rel=1e-3)
    assert anomaly["joint-zlib"]["auprc"] != anomaly["joint"]["auprc"]


def test_a_20000_by_20000_png_is_refused_on_its_header_in_bounded_memory():
    import tracemalloc

    data = _png_header_only(20_000, 20_000)  # 400 million pixels declared: 400 MB as grey, 1.2 GB as RGB
    tracemalloc.start()
    with pytest.raises(ImageError, match="pixel limit"):
        prepare(data, "huge.png", 28, 1, "mnist")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20, peak
