"""User images -> tensors a detector can score, made the way its training images were made.

One path for `lvm score` and the app: `prepare(bytes, name, ...)` decodes (validated, bounded in memory),
then applies one of PREPROCESS:

- ``mnist``: find the ink and redo MNIST's normalisation (lvm.digits: 20 px box, centre of mass at the
  centre of 28 x 28, white ink on black), for photos and scans of digits;
- ``center-crop``: what `lvm.data` does to a folder's images when a detector trains on them (shorter side
  resized to the model's size, centre cropped), recorded in the detector's reference.json;
- ``none``: the image as it is, squashed to the model's square (for images already in the training format).

An image with nothing to score (uniform, or no ink found) is *refused* with a reason, never scored.
"""
from __future__ import annotations

import glob
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .digits import SIDE, mnist_style

MAX_BYTES = 20 * 2**20          # refuse files larger than this before decoding (the app's upload limit too)
MAX_PIXELS = 40_000_000         # refuse images larger than this (decompression bombs) before decoding
WORK = 1024                     # a decoded image is reduced to this longest side at once (memory, time)
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")  # taken from folders
PREPROCESS = ("auto", "mnist", "center-crop", "none")  # auto: what the detector records (`preprocessing_for`)
UNIFORM = 0.04                  # an image whose grey levels span less than this is blank
SMALL_DIGIT = 10                # mnist: a digit whose box is under this many pixels is upscaled a lot: warn


class ImageError(ValueError):
    """One file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Prepared:
    """One image ready to score, or refused with the reason.

    x: (C, S, S) float32 in [0, 1] as the model sees it, or None when refused.
    received: the image as received (first frame, upright), uint8, at most 256 px on its longer side.
    size: (width, height) of the file's image; preprocess: the preprocessing applied.
    inverted: dark ink on light paper, turned light on dark. warning: "" or why to be careful with the score.
    """

    name: str
    x: torch.Tensor | None
    received: np.ndarray
    size: tuple[int, int]
    preprocess: str
    inverted: bool = False
    warning: str = ""
    refused: str = ""


def preprocessing_for(data_name: str, image_size: int, channels: int, recorded: str = "") -> str:
    """What `auto` means for a detector: the preprocessing it records, else mnist for a 28 x 28 grey MNIST
    model, center-crop for one trained on a folder (lvm.data's loader), none otherwise."""
    if recorded:
        return recorded
    if data_name == "mnist" and image_size == SIDE and channels == 1:
        return "mnist"
    return "center-crop" if data_name == "folder" else "none"


def decode(data: bytes, name: str) -> Image.Image:
    """The file's first frame, upright (EXIF), at most WORK px on its longer side; any problem is an
    ImageError naming `name`. Memory stays bounded: sizes are checked on the header, JPEGs decode reduced."""
    if len(data) == 0:
        raise ImageError(f"{name}: the file is empty")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: {len(data) / 2**20:.1f} MB is over the {MAX_BYTES // 2**20} MB limit; "
                         f"send a smaller copy (a digit needs no more than about 1000 x 1000 pixels)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{name}: {img.width} x {img.height} pixels is over the {MAX_PIXELS:,}-pixel "
                                 f"limit; send a smaller copy (about 1000 x 1000 pixels is plenty)")
            img.seek(0)
            if img.format == "JPEG":
                img.draft(img.mode, (WORK, WORK))  # decode at 1/2, 1/4 or 1/8 scale when that is still >= WORK
            img.load()
            img = ImageOps.exif_transpose(img)  # phone photos upright
            return _flat(img, WORK)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:  # PIL's own cap, met while reading the header
        raise ImageError(f"{name}: declares more than the {MAX_PIXELS:,}-pixel limit (a decompression bomb?); "
                         f"refused without decoding") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{name}: not an image PIL can read ({type(e).__name__}); send a PNG or JPEG") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(f"{name}: damaged or truncated image ({e}); export it again") from e


def _flat(img: Image.Image, side: int) -> Image.Image:
    """L or RGB, 8 bits, no alpha, longest side <= `side`. 16-bit and float images are stretched to their
    range; transparency goes to black, or to white when the opaque pixels are dark (ink drawn on nothing)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float32)
        span = float(a.max() - a.min())
        img = Image.fromarray(((a - a.min()) / span * 255 if span > 0 else a * 0).astype(np.uint8))
    elif img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        a = np.asarray(img)
        seen = a[..., 3] > 127
        dark = seen.any() and float(np.asarray(img.convert("L"))[seen].mean()) < 128
        back = Image.new("RGBA", img.size, (255, 255, 255, 255) if dark else (0, 0, 0, 255))
        img = Image.alpha_composite(back, img)
    if img.mode not in ("L", "RGB"):
        img = img.convert("L" if img.mode == "1" else "RGB")
    if max(img.size) > side:
        img = img.copy()
        img.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return img


def to_model_input(img: Image.Image, image_size: int, channels: int) -> torch.Tensor:
    """`none`: a decoded image -> (C, H, W) float32 in [0, 1], squashed to the model's square."""
    img = img.convert("L" if channels == 1 else "RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    return _tensor(np.asarray(img, dtype=np.float32) / 255.0, image_size, channels)


def center_crop_input(img: Image.Image, image_size: int, channels: int) -> torch.Tensor:
    """`center-crop`: lvm.data's folder loader (torchvision Resize(S) then CenterCrop(S)), for detectors
    trained on a folder."""
    from torchvision import transforms

    img = img.convert("L" if channels == 1 else "RGB")
    img = transforms.CenterCrop(image_size)(transforms.Resize(image_size)(img))
    return _tensor(np.asarray(img, dtype=np.float32) / 255.0, image_size, channels)


def _tensor(a: np.ndarray, image_size: int, channels: int) -> torch.Tensor:
    return torch.from_numpy(a.reshape(image_size, image_size, channels).transpose(2, 0, 1).copy())


def dark_on_light(x: torch.Tensor) -> bool:
    """Whether a (C, H, W) image in [0, 1] looks like dark ink on light paper: its border is mostly light."""
    border = torch.cat([x[:, 0].flatten(), x[:, -1].flatten(), x[:, :, 0].flatten(), x[:, :, -1].flatten()])
    return float(border.mean()) > 0.5


def prepare(data: bytes, name: str, image_size: int, channels: int, preprocess: str) -> Prepared:
    """Decode `data` and make the model's input with `preprocess` (not `auto`: see `preprocessing_for`).

    Raises:
        ImageError: the file cannot be read (the message names it and says what to do).
        ValueError: an unknown preprocessing, or mnist for a model that is not 28 x 28 grey.
    """
    if preprocess not in PREPROCESS[1:]:
        raise ValueError(f"preprocessing {preprocess!r}: expected one of {', '.join(PREPROCESS[1:])}")
    if preprocess == "mnist" and (image_size, channels) != (SIDE, 1):
        raise ValueError(f"mnist preprocessing makes 28 x 28 grey images; this model takes {channels} x "
                         f"{image_size} x {image_size}: use --preprocess center-crop or none")
    img = decode(data, name)
    thumb = img.copy()
    thumb.thumbnail((256, 256), Image.Resampling.BILINEAR)
    w, h = img.size
    grey = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    out = dict(name=name, received=np.asarray(thumb), size=(w, h), preprocess=preprocess)
    q = 0.01 if preprocess == "mnist" else 0.5  # a thin digit on a large page can be under 0.5 % of its pixels
    lo, hi = np.percentile(grey, [q, 100 - q])
    if hi - lo < UNIFORM:
        return Prepared(x=None, refused=f"nothing to score: the image is blank (one grey level, {255 * lo:.0f} "
                        f"of 255{', a single pixel' if w * h == 1 else ''}); photograph or scan the digit itself",
                        **out)
    small = "" if max(w, h) >= image_size else (f"{w} x {h} pixels is smaller than the model's {image_size} x "
                                                f"{image_size} input: scored after upscaling, which blurs it")
    if preprocess == "none":
        return Prepared(x=to_model_input(img, image_size, channels), warning=small, **out)
    if preprocess == "center-crop":
        return Prepared(x=center_crop_input(img, image_size, channels), warning=small, **out)
    digit = mnist_style(grey)
    if digit.image is None:
        return Prepared(x=None, inverted=digit.inverted, refused=f"nothing to score: {digit.reason}; photograph or "
                        f"scan a digit written darker than the paper (or lighter on a dark ground)", **out)
    long = max(digit.box[2] - digit.box[0], digit.box[3] - digit.box[1])
    if long < SMALL_DIGIT:
        small = (f"the digit is only {long} pixels tall or wide in the image: scored after upscaling it "
                 f"{20 / long:.1f}x, which blurs it")
    return Prepared(x=torch.from_numpy(digit.image)[None], inverted=digit.inverted, warning=small, **out)


def read_file(path: str | Path) -> bytes:
    """A file's bytes for `prepare`; a folder or missing file is an ImageError (checked before reading)."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: a folder, where an image file is expected (`lvm score` takes folders and "
                         f"globs and scores the images in them)")
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise ImageError(f"{path}: {path.stat().st_size / 2**20:.1f} MB is over the {MAX_BYTES // 2**20} MB limit")
    return path.read_bytes()


def read_image(data: bytes, name: str, image_size: int, channels: int) -> torch.Tensor:
    """`none` preprocessing of an uploaded file's bytes; any problem is an ImageError naming `name`."""
    return to_model_input(decode(data, name), image_size, channels)


def read_image_file(path: str | Path, image_size: int, channels: int) -> torch.Tensor:
    return read_image(read_file(path), str(path), image_size, channels)


def image_paths(args: list[str]) -> tuple[list[str], list[str]]:
    """(files to score, problems) from command-line arguments: a folder gives its image files (SUFFIXES, any
    depth, sorted), a glob pattern its sorted matches, anything else itself (so a missing file is reported).
    An empty folder, a folder without images and a pattern matching nothing are named in the problems."""
    out: list[str] = []
    problems: list[str] = []
    for a in args:
        if Path(a).is_dir():
            files = [p for p in Path(a).rglob("*") if p.is_file()]
            found = sorted(str(p) for p in files if p.suffix.lower() in SUFFIXES)
            if not files:
                problems.append(f"{a}: an empty folder")
            elif not found:
                problems.append(f"{a}: a folder with no images ({len(files)} files, none ending in "
                                f"{', '.join(SUFFIXES)})")
            out += found
        elif glob.has_magic(a):
            hits = sorted(glob.glob(a, recursive=True))
            if not hits:
                problems.append(f"{a}: no file matches this pattern")
            out += hits
        else:
            out.append(a)
    return out, problems
