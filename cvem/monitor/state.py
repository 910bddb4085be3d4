"""The service observer behind the metrics and the status page.

The runner calls :meth:`Monitor.cycle_done` after every cycle, :meth:`Monitor.cycle_failed`
when a cycle stops early and :meth:`Monitor.role_changed` when its Raft role changes
(cvem/service/leader.py). The monitor keeps the last :class:`CycleView` (replaced whole
each cycle), cumulative counters, the recent actions and a bounded history of the cloud's
reclaimed memory for the page's graph. Readers (HTTP threads) take :meth:`Monitor.read`,
a consistent copy under a lock.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Deque, Dict, Optional, Tuple

from ..ports import classify_failure
from .snapshot import ActionRow, CycleView, cycle_view

HISTORY_POINTS = 720        # 2 h at the default 10 s period
RECENT_ACTIONS = 50


@dataclass(frozen=True)
class MonitorState:
    view: Optional[CycleView]
    period_s: float
    cycles: Dict[str, int]                         # result -> count
    actions: Dict[Tuple[str, str], int]            # (kind, result) -> count
    oned_errors: Dict[str, int]                    # kind -> count
    last_action: Dict[int, ActionRow]              # vm -> last applied/issued action
    recent: Tuple[ActionRow, ...]                  # newest first
    reclaimed_history: Tuple[Tuple[float, int], ...]
    role: str                                      # SOLO, LEADER, FOLLOWER, ... or "-"
    acting: bool
    oned_up: bool
    last_error: str
    started_s: float


class Monitor:
    def __init__(self, period_s: float, clock=time.time):
        self._lock = threading.Lock()
        self._clock = clock
        self._period_s = period_s
        self._view: Optional[CycleView] = None
        self._cycles: Counter = Counter()
        self._actions: Counter = Counter()
        self._errors: Counter = Counter()
        self._last_action: Dict[int, ActionRow] = {}
        self._recent: Deque[ActionRow] = deque(maxlen=RECENT_ACTIONS)
        self._history: Deque[Tuple[float, int]] = deque(maxlen=HISTORY_POINTS)
        self._role, self._acting = "-", True
        self._oned_up, self._last_error = False, ""
        self._started_s = clock()
        self._changed = threading.Condition(self._lock)

    # ----------------------------------------------------------- the runner's hooks
    def cycle_done(self, report, in_flight: Optional[int] = None) -> None:
        view = cycle_view(report)
        if in_flight is not None:
            view = _with_in_flight(view, in_flight)
        with self._lock:
            self._view = view
            self._cycles["ok"] += 1
            self._oned_up, self._last_error = True, ""
            for row in view.actions:
                self._actions[(row.kind, row.result)] += 1
                if row.result in ("applied", "issued", "failed"):
                    self._recent.appendleft(row)
                if row.result in ("applied", "issued"):
                    self._last_action[row.vm_id] = row
            result = report.result
            if result is not None:
                for kind in result.oned_error_kinds:
                    self._errors[kind] += 1
                for outcome in result.migrations:
                    if outcome.status == "failed":
                        self._errors[classify_failure(outcome.message, 0)] += 1
            alive = {v.vm_id for v in view.vms}
            self._last_action = {k: v for k, v in self._last_action.items() if k in alive}
            self._history.append((view.at_s, view.reclaimed_bytes))
            self._changed.notify_all()

    def cycle_failed(self, kind: str, message: str) -> None:
        """``kind``: unreachable, authentication, adapter or internal."""
        with self._lock:
            self._cycles["failed"] += 1
            self._errors[kind] += 1
            if kind in ("unreachable", "authentication"):
                self._oned_up = False
            self._last_error = message
            self._changed.notify_all()

    def role_changed(self, role: str, acting: bool) -> None:
        with self._lock:
            self._role, self._acting = role, acting
            if not acting:
                # an idle front-end exports no per-host/VM series: only the acting one's
                # are current (the dashboard sums over front-ends)
                self._view = None
                if role in ("FOLLOWER", "CANDIDATE"):
                    self._oned_up = True   # its oned answered raftstatus
            self._changed.notify_all()

    # -------------------------------------------------------------------- readers
    def read(self) -> MonitorState:
        with self._lock:
            return MonitorState(
                view=self._view, period_s=self._period_s, cycles=dict(self._cycles),
                actions=dict(self._actions), oned_errors=dict(self._errors),
                last_action=dict(self._last_action), recent=tuple(self._recent),
                reclaimed_history=tuple(self._history), role=self._role,
                acting=self._acting, oned_up=self._oned_up, last_error=self._last_error,
                started_s=self._started_s)

    def wait_for_cycles(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` cycles (ok or failed) have been seen (tests, tools)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while sum(self._cycles.values()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True


def _with_in_flight(view: CycleView, in_flight: int) -> CycleView:
    from dataclasses import replace
    return replace(view, migrations_in_flight=in_flight)
