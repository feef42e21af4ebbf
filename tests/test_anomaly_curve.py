"""experiments.anomaly_curve: regression passes after each correction, the breadth-first plan, resumable budgets."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from experiments import anomaly_curve as curve
from lvm import data as datasets
from lvm.config import DataConfig
from lvm.trainer import Trainer


def small(method: str) -> tuple:
    train, _ = datasets.meg_split(4, DataConfig("mnist", limit=300))
    cfg = replace(curve.config(method, 0), ot_every=2, data=DataConfig("mnist", limit=300))
    return cfg, train


def params(tr: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in tr.generator.parameters()]


def test_no_regression_passes_is_the_plain_trainer() -> None:
    cfg, train = small("ours-a0.1")
    a, b = Trainer(cfg, train), curve.RegressingTrainer(cfg, train)
    for _ in range(2):
        a.step()
        step = b.step()
    assert step.correction is not None and not step.correction.skipped
    assert all(torch.equal(p, q) for p, q in zip(params(a), params(b)))


def test_regression_passes_fit_the_corrected_pairs() -> None:
    cfg, train = small("ours-a0.3-r50")
    plain, reg = curve.RegressingTrainer(cfg, train), curve.RegressingTrainer(cfg, train)
    reg.regress_steps = 20
    for _ in range(2):
        plain.step()
        reg.step()
    assert not all(torch.equal(p, q) for p, q in zip(params(plain), params(reg)))
    # both hold the same corrected population; the generator that took the passes reconstructs it better
    assert torch.allclose(plain.z, reg.z)
    with torch.no_grad():
        err = [float((train.x - t.generator(t.z)).pow(2).mean()) for t in (plain, reg)]
    assert err[1] < err[0]


def test_plan_is_breadth_first() -> None:
    todo = curve.plan([4, 9], ["abp", "vae"], [150.0, 600.0], [0, 1])
    assert todo[:4] == [(150.0, 0, 4, "abp"), (150.0, 0, 4, "vae"), (150.0, 0, 9, "abp"), (150.0, 0, 9, "vae")]
    assert all(b == 150.0 for b, *_ in todo[:8]) and all(b == 600.0 for b, *_ in todo[8:])


@pytest.mark.slow
def test_budgets_are_checkpoints_of_one_resumable_run(tmp_path: Path) -> None:
    run = tmp_path / "abp-d4-s0"
    run.mkdir()
    logs = []
    first = curve.train_to(run, "abp", 4, 0, 1.0, logs.append)
    assert first["cpu_s"] >= 1.0 and (run / "ckpt-1.pt").exists()
    assert curve.train_to(run, "abp", 4, 0, 1.0, logs.append) == first  # done: read back, not retrained
    second = curve.train_to(run, "abp", 4, 0, 2.0, logs.append)          # resumes from the 1-second state
    assert second["iteration"] > first["iteration"] and second["cpu_s"] >= 2.0
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in lines] == list(range(1, second["iteration"] + 1))  # no iteration twice
