"""Where one training iteration of the anomaly detectors' conv generator spends its time, and what the
candidate speed-ups give (issue 12, step 0). Prints markdown tables.

    python -m benchmarks.conv_step [--threads 1] [--batch 128] [--steps 5] [--repeats 5]

Phases of one iteration at the recipe's settings (d = 16, width 32, 28 x 28, K Langevin steps, one Adam
step): Langevin (forward and backward to z, K times) and learning. Variants of the Langevin gradient:
eager (today), channels-last memory format, and torch.compile of the energy gradient; each reports
image-steps/s and the largest difference of z^K from eager's (the same noise), which must be float noise.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from lvm.config import LangevinConfig, ModelConfig
from lvm.langevin import energy, infer
from lvm.models import build_generator


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (and compilation)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def langevin_compiled(gen, x, z0, cfg: LangevinConfig, noise):
    @torch.compile(dynamic=False)
    def grad(z):
        z = z.detach().requires_grad_(True)
        e = energy(gen, z, x, cfg.sigma).sum()
        return torch.autograd.grad(e, z)[0]

    def run():
        z, s = z0.clone(), cfg.step_size
        for k in range(cfg.steps):
            z = z - 0.5 * s * s * grad(z) + s * noise[k]
        return z
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-compile", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    gen = build_generator(ModelConfig(16, "conv", 28, 1, 32))
    cfg = LangevinConfig(steps=a.steps, step_size=0.1, sigma=0.3)
    x, z0 = torch.rand(a.batch, 1, 28, 28), torch.randn(a.batch, 16)
    noise = torch.randn(a.steps, a.batch, 16)
    opt = torch.optim.Adam(gen.parameters(), lr=1e-3)
    ref = infer(gen, x, z0, cfg, noise=noise)

    def learn():
        loss = (x - gen(ref)).flatten(1).pow(2).sum(1).mean() / (2 * cfg.sigma ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    state = {k: v.clone() for k, v in gen.state_dict().items()}
    rows = [("eager (today)", lambda: infer(gen, x, z0, cfg, noise=noise))]
    gen_cl = build_generator(ModelConfig(16, "conv", 28, 1, 32))
    gen_cl.load_state_dict(state)
    gen_cl = gen_cl.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    rows.append(("channels-last", lambda: infer(gen_cl, x_cl, z0, cfg, noise=noise)))
    if not a.no_compile:
        rows.append(("torch.compile of the gradient", langevin_compiled(gen, x, z0, cfg, noise)))
    print(f"conv generator d = 16, width 32, batch {a.batch}, K = {a.steps}, {a.threads} thread(s), torch "
          f"{torch.__version__}, {platform.processor() or platform.machine()}\n")
    print("| Langevin variant | ms per call | image-steps/s | max abs z^K difference from eager |")
    print("|---|---|---|---|")
    for name, fn in rows:
        t0 = time.perf_counter()
        z = fn()
        first = time.perf_counter() - t0
        t = timed(fn, a.repeats)
        diff = float((z - ref).abs().max())
        print(f"| {name} | {1000 * t:.1f} (first call {first:.1f} s) | {a.batch * a.steps / t:,.0f} | {diff:.1e} |")
    t_learn = timed(learn, a.repeats)
    t_lv = timed(rows[0][1], a.repeats)
    print(f"\nOne iteration, eager: Langevin {1000 * t_lv:.1f} ms ({t_lv / (t_lv + t_learn):.0%}), learning step "
          f"{1000 * t_learn:.1f} ms ({t_learn / (t_lv + t_learn):.0%}); the OT correction every L iterations comes "
          "on top (see `python -m lvm bench ot`).")


if __name__ == "__main__":
    main()
