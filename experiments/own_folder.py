"""Issue 12, item 3: the own-folder flow, run as a practitioner would, with its printed output kept.

    python -m experiments.own_folder [--normal 0] [--anomaly 6] [--n 3000] [--epochs 6] [--work /tmp/own]

Writes a flat folder of --n MNIST training images of the digit --normal as PNG files (the user's normal
images), a test root with normal/ and anomaly/ subfolders (200 test images each of --normal and --anomaly)
and six new images (three of each, not in the test root), then runs, as subprocesses:

    python -m lvm anomaly --data folder --root WORK/normal --test-root WORK/test --latent-dim 16
                          --langevin-steps 5 --epochs E --threads 1 --out runs/own-folder
    python -m lvm score runs/own-folder/checkpoint.pt "WORK/new_*.png"

and writes both commands and what they printed to results/anomaly_own_folder.md. Then, in Chromium, the
Anomaly view takes runs/own-folder in its "Your own detector" box and scores two of the new images: the
screenshot is results/anomaly_own_folder.png.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lvm.config import DataConfig
from lvm.data import load

from ._report import machine

ROOT = Path(__file__).resolve().parents[1]


def _write(x, path: Path) -> None:
    Image.fromarray((x[0].numpy() * 255).round().astype(np.uint8)).save(path)


def make_folders(work: Path, normal: int, anomaly: int, n: int) -> None:
    """The normal folder (flat), the labelled test root and six new images, from MNIST."""
    if work.exists():
        shutil.rmtree(work)
    for sub in ("normal", "test/normal", "test/anomaly"):
        (work / sub).mkdir(parents=True)
    train, test = load(DataConfig("mnist"), "train"), load(DataConfig("mnist"), "test")
    for k, i in enumerate(np.flatnonzero(train.y.numpy() == normal)[:n]):
        _write(train.x[i], work / "normal" / f"{normal}_{k:05d}.png")
    for label, sub in ((normal, "normal"), (anomaly, "anomaly")):
        idx = np.flatnonzero(test.y.numpy() == label)
        for k, i in enumerate(idx[:200]):
            _write(test.x[i], work / "test" / sub / f"{label}_{k:03d}.png")
        for k, i in enumerate(idx[200:203]):
            _write(test.x[i], work / f"new_{label}_{k}.png")


def run(args: list[str]) -> tuple[str, str, float]:
    """(the command as typed, its stdout, seconds); stops on failure with its stderr."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lvm", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"lvm {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    typed = "python -m lvm " + " ".join(f'"{a}"' if "*" in a else a for a in args)
    return typed, proc.stdout.rstrip(), time.perf_counter() - t0


def screenshot(out: str, images: list[Path], path: Path) -> None:
    """The Anomaly view on the detector in `out`, `images` uploaded, in Chromium (as tests/test_browser.py runs it)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from app_server import ARGS, CHROMIUM, streamlit_app
    from playwright.sync_api import sync_playwright

    with streamlit_app() as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1900})
        page.goto(url + "/anomaly")
        box = page.get_by_label("Your own detector (optional)", exact=False)
        box.wait_for(timeout=120_000)
        box.fill(out)
        box.press("Enter")
        page.wait_for_selector("text=of your normal images held out", timeout=120_000)
        page.set_input_files("input[type=file]", [str(p) for p in images])
        page.wait_for_selector(f"text={images[-1].name}", timeout=120_000)
        time.sleep(6)  # the histogram's redraw
        page.screenshot(path=str(path), full_page=True)
        browser.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--normal", type=int, default=0)
    p.add_argument("--anomaly", type=int, default=6)
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--epochs", type=float, default=6)
    p.add_argument("--work", default="/tmp/own")
    p.add_argument("--out", default="runs/own-folder")
    a = p.parse_args()
    work, out = Path(a.work), a.out
    make_folders(work, a.normal, a.anomaly, a.n)
    if (ROOT / out).exists():
        shutil.rmtree(ROOT / out)
    steps = [run(["anomaly", "--data", "folder", "--root", str(work / "normal"), "--test-root", str(work / "test"),
                  "--latent-dim", "16", "--langevin-steps", "5", "--epochs", f"{a.epochs:g}", "--threads", "1",
                  "--out", out]),
             run(["score", f"{out}/checkpoint.pt", str(work / "new_*.png")])]
    lines = ["# Your own normal images: the own-folder flow, run once (issue 12, item 3)", "",
             f"`python -m experiments.own_folder --normal {a.normal} --anomaly {a.anomaly} --n {a.n} --epochs "
             f"{a.epochs:g}`. {machine()}. Started {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC.", "",
             f"The normal folder: {a.n:,} MNIST training images of the digit {a.normal}, one flat folder of PNGs. "
             f"The test root: 200 MNIST test images of {a.normal} in normal/ and 200 of {a.anomaly} in anomaly/. "
             f"The new images: three more test images of each digit.", ""]
    for typed, stdout, seconds in steps:
        lines += [f"`{typed}` ({seconds:.0f} s, progress bars on stderr):", "", "```", stdout, "```", ""]
    lines += ["The Anomaly view with `runs/own-folder` in its \"Your own detector\" box: "
              "`anomaly_own_folder.png`."]
    (ROOT / "results" / "anomaly_own_folder.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    screenshot(out, [work / f"new_{a.anomaly}_2.png", work / f"new_{a.normal}_1.png"],
               ROOT / "results" / "anomaly_own_folder.png")


if __name__ == "__main__":
    main()
