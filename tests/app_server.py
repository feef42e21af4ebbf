"""`streamlit run app.py` on a free localhost port for the browser tests (a helper, not a test)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout, sync_playwright
except ImportError:  # the browser tests skip, or fail under CI
    PlaywrightTimeout, sync_playwright = TimeoutError, None

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
MISSING = [w for w, ok in (("chromium", os.path.exists(CHROMIUM)), ("playwright", sync_playwright)) if not ok]


def skip_without_browser() -> None:
    """Skip the calling test module when Chromium or Playwright is missing, unless CI is set."""
    if MISSING and not os.environ.get("CI"):
        pytest.skip(f"{' and '.join(MISSING)} not installed (.ci/run installs them)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_app(*options: str):
    """Yields (url, server process); `options` are extra `streamlit run` flags."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *options],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                assert time.monotonic() - t0 < 60, "streamlit did not open its port in 60 s"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(10)


def thread_count(pid: int, name: str | None = None) -> int:
    """OS threads of a process (Linux), or only those named `name`."""
    tasks = Path(f"/proc/{pid}/task")
    if name is None:
        return len(list(tasks.iterdir()))
    return sum(_comm(t) == name for t in tasks.iterdir())


def _comm(task: Path) -> str | None:
    """A thread's name, or None when it ended between listing and reading."""
    try:
        return (task / "comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
