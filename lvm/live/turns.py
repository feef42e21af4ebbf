"""Who trains when: the turns the live sessions of a process take, and their threads' name and priority."""
from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import os
import threading

NICE_ENV, TURNS_ENV = "LVM_TRAIN_NICE", "LVM_TRAIN_TURNS"
TRAIN_NICE = 10  # default niceness added to training threads: they yield the cores to the page and the browser


class Turns:
    """At most `slots` holders at a time, served first come, first served (a lock is not fair: the thread
    that releases it usually takes it straight back, and the other sessions would never train).

    `yielding` lends slots to whoever runs it (a page being drawn) without waiting: while it lasts, no new
    turn starts beyond slots minus the lenders, one slot at the least; turns in flight run to their end."""

    def __init__(self, slots: int):
        self._cond, self._queue = threading.Condition(), collections.deque()
        self._slots, self._held, self._lent = slots, 0, 0

    def _open(self) -> int:
        return max(1, self._slots - self._lent) - self._held

    @contextlib.contextmanager
    def turn(self):
        me = object()
        with self._cond:
            self._queue.append(me)
            while self._queue[0] is not me or self._open() <= 0:
                self._cond.wait()
            self._queue.popleft()
            self._held += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._held -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def yielding(self):
        with self._cond:
            self._lent += 1
        try:
            yield
        finally:
            with self._cond:
                self._lent -= 1
                self._cond.notify_all()


@functools.cache
def process_turns() -> Turns:
    """The turns every live session of this process takes unless it is given its own: one per core (or
    $LVM_TRAIN_TURNS, read at the first call). A page being drawn takes one back (`Turns.yielding`, app.py), so
    that switching pages is as quick as with a core kept free while the runs use every core between page
    switches (docs/decisions.md)."""
    return Turns(int(os.environ.get(TURNS_ENV) or os.cpu_count() or 1))


def as_training_thread(name: str, nice: int | None = None) -> None:
    """Name the calling thread `name` for the OS too (Linux: top -H, /proc/PID/task/TID/comm) and give it `nice`
    more niceness (default $LVM_TRAIN_NICE or TRAIN_NICE; a Linux thread's own priority), so that on a busy machine the page's server thread and the
    browser come before training; elsewhere only the Python name is set."""
    try:
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
    nice = int(os.environ.get(NICE_ENV, TRAIN_NICE)) if nice is None else nice
    if nice and hasattr(os, "setpriority"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except OSError:
            pass
