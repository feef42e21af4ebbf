"""User images -> tensors the model can score: validated with PIL, converted, resized."""
from __future__ import annotations

import glob
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 20 * 2**20          # refuse files larger than this before decoding
MAX_PIXELS = 40_000_000         # refuse images larger than this (decompression bombs)
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")  # taken from folders


class ImageError(ValueError):
    """One file that cannot be used; the message names the file and the problem."""


def to_model_input(img: Image.Image, image_size: int, channels: int) -> torch.Tensor:
    """A PIL image -> (C, H, W) float32 in [0, 1]: first frame, converted, resized to a square."""
    img.seek(0)
    mode = "L" if channels == 1 else "RGB"
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        span = a.max() - a.min()
        img = Image.fromarray(((a - a.min()) / span * 255 if span > 0 else a * 0).astype(np.uint8))
    elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        back = Image.new("RGBA", img.size, (0, 0, 0, 255))  # transparent pixels -> black, like MNIST's background
        img = Image.alpha_composite(back, img)
    img = img.convert(mode).resize((image_size, image_size), Image.Resampling.BILINEAR)
    a = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(a.reshape(image_size, image_size, channels).transpose(2, 0, 1).copy())


def dark_on_light(x: torch.Tensor) -> bool:
    """Whether a (C, H, W) image in [0, 1] looks like dark ink on light paper: its border is mostly light.

    MNIST-like models expect the opposite (light strokes on black), so such an image should be inverted.
    """
    border = torch.cat([x[:, 0].flatten(), x[:, -1].flatten(), x[:, :, 0].flatten(), x[:, :, -1].flatten()])
    return float(border.mean()) > 0.5


def read_image(data: bytes, name: str, image_size: int, channels: int) -> torch.Tensor:
    """Decode an uploaded file's bytes; any problem is an ImageError naming `name`."""
    if len(data) == 0:
        raise ImageError(f"{name}: the file is empty")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: {len(data) / 2**20:.1f} MB is over the {MAX_BYTES // 2**20} MB limit")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{name}: {img.width} x {img.height} pixels is over the "
                                 f"{MAX_PIXELS:,}-pixel limit")
            img.load()
            return to_model_input(ImageOps.exif_transpose(img), image_size, channels)  # phone photos upright
    except ImageError:
        raise
    except Image.DecompressionBombError as e:  # PIL's own cap, met while reading the header
        raise ImageError(f"{name}: declares more than the {MAX_PIXELS:,}-pixel limit (a decompression bomb?); "
                         f"refused without decoding") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{name}: not an image PIL can read ({type(e).__name__})") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(f"{name}: damaged or truncated image ({e})") from e


def read_image_file(path: str | Path, image_size: int, channels: int) -> torch.Tensor:
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: a folder, where an image file is expected (`lvm score` takes folders and "
                         f"globs and scores the images in them)")
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    return read_image(path.read_bytes(), str(path), image_size, channels)


def image_paths(args: list[str]) -> list[str]:
    """Files to score from command-line arguments: a folder gives its image files (SUFFIXES, any depth,
    sorted), a glob pattern its sorted matches, anything else itself (so a missing file is reported)."""
    out: list[str] = []
    for a in args:
        if Path(a).is_dir():
            out += sorted(str(p) for p in Path(a).rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif glob.has_magic(a) and (hits := sorted(glob.glob(a, recursive=True))):
            out += hits
        else:
            out.append(a)
    return out
