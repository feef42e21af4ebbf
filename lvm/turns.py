"""Who trains when: the turns all live sessions of a process take, and one run keeping pace with another."""
from __future__ import annotations

import collections
import contextlib
import os
import threading


class Turns:
    """At most `slots` holders at a time, served first come, first served (a lock is not fair: the thread
    that releases it usually takes it straight back, and the other sessions would never train)."""

    def __init__(self, slots: int):
        self._cond, self._queue, self._free = threading.Condition(), collections.deque(), slots

    @contextlib.contextmanager
    def turn(self):
        me = object()
        with self._cond:
            self._queue.append(me)
            while self._queue[0] is not me or self._free == 0:
                self._cond.wait()
            self._queue.popleft()
            self._free -= 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._free += 1
                self._cond.notify_all()


# The iterations of all sessions in a process take turns, one per core but one, so that the server keeping
# the pages alive always has a core and the GIL is not fought over by every open tab ($LVM_TRAIN_TURNS: another
# number of turns at a time).
TRAIN_TURNS = Turns(int(os.environ.get("LVM_TRAIN_TURNS") or max(1, (os.cpu_count() or 2) - 1)))
