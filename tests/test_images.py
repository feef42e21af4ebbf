"""User images: every common mode becomes a (C, H, W) tensor in [0, 1]; bad files name themselves."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from lvm.images import MAX_BYTES, ImageError, read_image


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
