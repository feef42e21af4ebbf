"""Live runs kept on disk: one checkpoint file per run in a runs folder, written atomically, so that a restarted
server (or a run that ended when its last viewer left) goes on at the iteration it had reached.

A run's file holds, for each of its sessions ("main", and "abp" beside it), `Session.export`: the trainer's
`state_dict` (model, optimiser, chains, OT state, iteration, live config), the kept frames and records and the
clocks, plus a little about the run (`meta`: e.g. a hash of its presenter's key, whether ABP was on). Nothing
else: never an uploaded image. Files are plain tensors and containers, read with ``weights_only=True``; a write
goes to a temporary file that is fsynced and renamed over the old one (`lvm.fileio.atomic_write`), so a process
killed mid-write leaves the previous checkpoint readable.

`Keeper` writes a run's file when it pauses (Pause, Step, a rollback) and every EVERY seconds while it trains.
Files not written for KEEP_HOURS are deleted by `sweep` (and stray temporary files of killed writes).
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import from_dict
from ..fileio import CheckpointError, atomic_save, read_torch
from .frames import Frame, State

FORMAT_VERSION = 1
DIR_ENV, KEEP_ENV, EVERY_ENV = "LVM_RUNS_DIR", "LVM_RUNS_KEEP_HOURS", "LVM_RUNS_EVERY"
KEEP_HOURS = 24.0   # a run's file is deleted this long after its last write (a visitor's run; a lecture is shorter)
EVERY = 60.0        # seconds between checkpoints of a run while it trains
POLL = 1.0          # seconds between a Keeper's looks at its run (a Pause is on disk within about this)
THREAD_NAME = "lvm-keeper"
RUN_ID = re.compile(r"[0-9a-f]{6,32}")  # what a run id looks like: nothing else becomes a file name


def runs_dir() -> Path:
    """$LVM_RUNS_DIR, else ~/.cache/lvm/runs (beside the data cache)."""
    return Path(os.environ.get(DIR_ENV) or Path.home() / ".cache" / "lvm" / "runs").expanduser()


def run_path(run_id: str, root: Path | None = None) -> Path:
    """The file of run `run_id`.

    Raises:
        ValueError: an id that is not a run id (a link's ?run= is user input).
    """
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(f"{run_id!r} is not a run id")
    return (root or runs_dir()) / f"{run_id}.pt"


def exists(run_id: str, root: Path | None = None) -> bool:
    return bool(RUN_ID.fullmatch(run_id)) and run_path(run_id, root).is_file()


def save(run_id: str, sessions: dict[str, dict], meta: dict | None = None, root: Path | None = None) -> Path:
    """Write run `run_id`'s file atomically: `sessions` maps a name to a `Session.export`."""
    payload = {"format_version": FORMAT_VERSION, "run_id": run_id, "saved_at": time.time(), "meta": meta or {},
               "sessions": {name: _packed(s) for name, s in sessions.items()}}
    return atomic_save(run_path(run_id, root), payload)


def load(run_id: str, root: Path | None = None) -> tuple[dict[str, dict], dict]:
    """(sessions as `Session.restore` takes them, meta) of run `run_id`.

    Raises:
        CheckpointError: missing, truncated, not a run file or of another format version.
    """
    path = run_path(run_id, root)
    got = read_torch(path)
    if not isinstance(got, dict) or got.get("format_version") != FORMAT_VERSION or "sessions" not in got:
        raise CheckpointError(f"{path}: not a live run of this version (format {FORMAT_VERSION})")
    return {name: _unpacked(s) for name, s in got["sessions"].items()}, got.get("meta", {})


def sweep(keep_hours: float | None = None, root: Path | None = None) -> list[Path]:
    """Delete run files not written for `keep_hours` ($LVM_RUNS_KEEP_HOURS, else KEEP_HOURS), and temporary
    files of writes killed over an hour ago; the paths deleted."""
    keep = float(os.environ.get(KEEP_ENV) or KEEP_HOURS) if keep_hours is None else keep_hours
    root, now, gone = root or runs_dir(), time.time(), []
    if not root.is_dir():
        return gone
    for p in root.iterdir():
        limit = 3600.0 if p.name.startswith(".") and p.name.endswith(".tmp") else keep * 3600.0
        try:
            if (p.suffix == ".pt" or p.name.endswith(".tmp")) and now - p.stat().st_mtime > limit:
                p.unlink()
                gone.append(p)
        except FileNotFoundError:  # another process swept it first
            pass
    return gone


def digest(trainer_state: dict) -> str:
    """sha256 of a trainer `state_dict`: every tensor's dtype, shape and bytes and every other value, keys in
    sorted order (two runs with the same model, optimiser, chains, OT state, iteration and config agree)."""
    h = hashlib.sha256()

    def feed(x: object) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, dict):
            for k in sorted(x, key=repr):
                h.update(f"K{k!r}".encode())
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(f"L{len(x)}".encode())
            for v in x:
                feed(v)
        else:
            h.update(f"V{x!r}".encode())

    feed(trainer_state)
    return h.hexdigest()


class Keeper:
    """A thread that writes a run's file when the run stops between iterations and every `every` seconds while
    it trains, until `close` (which writes once more).

    Args:
        run_id: the run.
        sessions: returns the run's sessions by name (they may change: ABP turned on or off).
        meta: returns the run's meta at each write.
    """

    def __init__(self, run_id: str, sessions: Callable[[], dict], meta: Callable[[], dict] = dict,
                 every: float | None = None, root: Path | None = None):
        self.run_id, self._sessions, self._meta, self._root = run_id, sessions, meta, root
        self.every = float(os.environ.get(EVERY_ENV) or EVERY) if every is None else every
        self._done, self._lock = threading.Event(), threading.Lock()
        self._written: tuple | None = None  # what the last write held: (name, run, iteration, state) per session
        self._at = time.monotonic()
        self.writes, self.error = 0, ""
        self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def write(self, force: bool = False) -> bool:
        """Write the run's file now if it changed since the last write (or `force`); whether it wrote."""
        with self._lock:
            sessions = dict(self._sessions())
            mark = self._mark(sessions)
            if not sessions or (mark == self._written and not force) or all(m[2] == 0 for m in mark):
                return False  # unchanged, or never trained (nothing to go on from)
            try:
                save(self.run_id, {n: s.export() for n, s in sessions.items()}, self._meta(), self._root)
            except OSError as e:  # a full or read-only disk: the run goes on, the page can say why
                self.error = f"could not keep run {self.run_id} on disk: {e}"
                return False
            self._written, self._at, self.error = mark, time.monotonic(), ""
            self.writes += 1
            return True

    def close(self, timeout: float = 30.0) -> None:
        """End the thread, then write once more (call it after the sessions stopped)."""
        self._done.set()
        self._thread.join(timeout)
        self.write()

    @staticmethod
    def _mark(sessions: dict) -> tuple:
        views = {n: s.view() for n, s in sessions.items()}
        return tuple(sorted((n, v.run, v.iteration, str(v.state), v.cfg) for n, v in views.items()))

    def _loop(self) -> None:
        while not self._done.wait(POLL):
            sessions = dict(self._sessions())
            training = any(s.state == State.RUNNING for s in sessions.values())
            if not training or time.monotonic() - self._at >= self.every:
                self.write()


# ---- a Session.export as plain tensors and containers (what weights_only=True reads) and back ------------
_ARRAYS = ("z", "before", "source", "target", "moved")


def _packed(s: dict) -> dict:
    now = time.monotonic()
    frames = [{"iteration": f.iteration, "seconds": f.seconds, "metrics": dict(f.metrics),
               **{k: None if getattr(f, k) is None else torch.from_numpy(np.ascontiguousarray(getattr(f, k)))
                  for k in _ARRAYS}} for f in s["frames"]]
    # a record's "wall" is this process's monotonic clock: kept as an age, so rates read on after a restart
    records = [{**r, "wall": r["wall"] - now} if "wall" in r else dict(r) for r in s["records"]]
    return {"trainer": s["trainer"], "cfg": asdict(s["cfg"]), "frames": frames, "records": records,
            "seconds": float(s["seconds"]), "epoch": float(s["epoch"]), "seconds_to_prior": s["seconds_to_prior"]}


def _unpacked(s: dict) -> dict:
    now = time.monotonic()
    names = {f.name for f in fields(Frame)}
    frames = tuple(Frame(**{k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in f.items() if k in names})
                   for f in s["frames"])
    records = tuple({**r, "wall": r["wall"] + now} if "wall" in r else r for r in s["records"])
    return {**s, "cfg": from_dict(s["cfg"]), "frames": frames, "records": records}
