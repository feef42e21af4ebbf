"""One check of every CUDA path, with a markdown report: ``bash scripts/gpu_check.sh [REPORT.md]``.

On a machine with a GPU (under 8 minutes on one): the CUDA tests, Langevin image-steps/s, the certified
auction cold and warm at n = 60,000 and 250,000 (d = 64), a short full-data anomaly training and scoring,
and the app's session thread training for a minute, each on the GPU. On a CPU-only machine it says so and
runs the same parts at CPU sizes (tests that need CUDA skip), then exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from lvm.ot.auction import auction
from lvm.config import LangevinConfig, ModelConfig
from lvm.langevin import infer
from lvm.models import build_generator
from lvm.presets import DEMO
from lvm.live.session import Session

ROOT = Path(__file__).resolve().parents[1]


def _cmd(args: list[str], timeout: float) -> tuple[int, str, float]:
    t0 = time.time()
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr)[-1500:], time.time() - t0


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "gpu-check.md"))
    p.add_argument("--session-seconds", type=float, default=None)
    p.add_argument("--quick", action="store_true", help="CPU sizes cut further (the CI's run of the CPU part)")
    a = p.parse_args()
    gpu = torch.cuda.is_available()
    dev = torch.device("cuda" if gpu else "cpu")
    name = torch.cuda.get_device_name(0) if gpu else f"no GPU: {platform.processor() or platform.machine()} CPU"
    lines = [f"# GPU check ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC)", "",
             f"Device: {name}; torch {torch.__version__}; `bash scripts/gpu_check.sh`.", ""]
    if not gpu:
        lines += ["**No CUDA device on this machine**: the parts below ran on the CPU at CPU sizes, and the "
                  "tests that need CUDA skipped.", ""]
    print(lines[2], flush=True)

    rc, out, sec = _cmd([sys.executable, "-m", "pytest", "-q", "-k", "cuda", "tests/test_ot.py",
                         "tests/test_session.py"], 300)
    lines += ["## CUDA tests", "", f"`pytest -q -k cuda tests/test_ot.py tests/test_session.py`: exit {rc}, "
              f"{sec:.0f} s: {out.strip().splitlines()[-1] if out.strip() else ''}", ""]

    lines += ["## Langevin", "", "| generator | d | batch | K | image-steps/s |", "|---|---|---|---|---|"]
    for arch, d, batch in (("mlp", 2, 1024), ("conv", 16, 1024 if gpu else 128), ("conv", 64, 1024 if gpu else 128)):
        gen = build_generator(ModelConfig(d, arch)).to(dev)
        x, z = torch.rand(batch, 1, 28, 28, device=dev), torch.randn(batch, d, device=dev)
        cfg = LangevinConfig(steps=10)
        infer(gen, x, z, cfg)
        _sync(dev)
        t0 = time.perf_counter()
        infer(gen, x, z, cfg)
        _sync(dev)
        lines.append(f"| {arch} | {d} | {batch} | 10 | {batch * 10 / (time.perf_counter() - t0):,.0f} |")

    lines += ["", "## The certified auction (scores in IEEE float32, prices in float64)", "",
              "| n | d | cold s | warm s (after a small drift) | certified gap |", "|---|---|---|---|---|"]
    torch.backends.cuda.matmul.allow_tf32 = False
    for n in ((60_000, 250_000) if gpu else (4_000,)):
        g = torch.Generator().manual_seed(0)
        tgt = torch.randn(n, 64, generator=g).to(dev)
        src = (0.7 * torch.randn(n, 64, generator=g) + 0.3).to(dev)
        t0 = time.perf_counter()
        cold = auction(src, tgt)
        _sync(dev)
        t_cold = time.perf_counter() - t0
        moved = src + 0.01 * torch.randn(n, 64, generator=g).to(dev)
        t0 = time.perf_counter()
        warm = auction(moved, tgt, prices=cold.prices, epsilon=cold.epsilon, assignment=cold.assignment)
        _sync(dev)
        lines.append(f"| {n:,} | 64 | {t_cold:.1f} | {time.perf_counter() - t0:.1f} | {warm.rel_gap:.1e} |")

    args = ["anomaly", "--holdout", "4", "--method", "abp", "--langevin-steps", "5", "--epochs", "1", "--n", "2000",
            "--device", "auto", "--out", str(Path(a.out).with_suffix("")) + "-anomaly", "--json"]
    if not gpu:
        args = [x if x != "2000" else ("300" if a.quick else "2000") for x in args] + ["--limit", "300" if a.quick else "1000"]
    rc, out, sec = _cmd([sys.executable, "-m", "lvm", *args], 900)
    res = next((json.loads(ln) for ln in out.splitlines()[::-1] if ln.startswith("{")), {})
    lines += ["", "## Anomaly training and scoring", "", f"`python -m lvm {' '.join(args)}`: exit {rc}, {sec:.0f} s, "
              f"AUPRC {res.get('auprc', float('nan')):.3f} on {res.get('n_test', 0)} test images "
              f"({'all normal training images' if gpu else 'the first ' + args[-1] + ' normal training images'}).", ""]

    seconds = a.session_seconds or (60.0 if gpu else 10.0)
    s = Session(DEMO, device=str(dev))
    s.start()
    time.sleep(seconds)
    v = s.view()
    s.stop()
    lines += ["## The app's session thread", "", f"`lvm.live.session.Session(DEMO)` on {s.device}: {v.iteration} "
              f"iterations in {v.seconds:.1f} s of training ({v.iteration / max(v.seconds, 1e-9):.1f} it/s), "
              f"state {v.state}{', ' + v.message if v.message else ''}.", ""]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
