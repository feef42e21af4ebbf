"""Imported at start-up by a Python whose path begins with this folder (`benchmarks.app.app_latency` starts the
app's server so when asked): appends one line per full (generation 2) garbage collection to $LVM_GC_LOG, its
start (Unix time) and its duration in seconds. A full collection stops every thread of the process."""
import gc
import os
import time

_LOG = os.environ.get("LVM_GC_LOG")
_started: list[float] = []


def _hook(phase: str, info: dict) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _started.append(time.time())
    elif _started:
        t0 = _started.pop()
        with open(_LOG, "a") as f:
            f.write(f"{t0:.3f} {time.time() - t0:.4f}\n")


if _LOG:
    gc.callbacks.append(_hook)
