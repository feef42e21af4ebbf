"""Fixtures and helpers the test modules share."""
from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from lvm.config import DataConfig
from lvm.data import ImageData, load

MNIST01 = DataConfig(name="mnist", classes=(0, 1), limit=400)  # real digits 0 and 1: 4 batches of 100


@pytest.fixture(scope="session")
def mnist01() -> ImageData:
    """The first 400 training images of MNIST digits 0 and 1."""
    return load(MNIST01, "train")


def _wait_until(cond: Callable[[], bool], timeout: float = 60.0, every: float = 0.02) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(every)


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., None]:
    """wait_until(cond, timeout=60): poll `cond` until it holds; fail the test after `timeout` seconds."""
    return _wait_until
