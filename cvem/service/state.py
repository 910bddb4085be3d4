"""cvem's state between cycles, in sqlite: a restart loses nothing and repeats nothing.

Tables:

* ``history``: the core's :class:`~cvem.core.fleet.FleetHistory` — its ``vm_ids`` and each
  state column (cooldown times, policy histograms...) as one row of ``numpy.save`` bytes;
* ``report_marks``: per VM and source, the last sequence marker of its guest report and
  when it changed on cvem's clock (staleness survives restarts);
* ``inflight``: every resize from just before it is sent until oned shows it settled; a
  restarted cvem reconciles these before deciding anything;
* ``migration_arrays`` and ``migrations``: overload protection's
  :class:`~cvem.core.migration.MigrationState` — per-host demand history and cooldown
  clocks, the one-hour log of moved VMs (no ping-pong), and every live migration from just
  before ``one.vm.migrate`` is sent until oned shows the VM RUNNING on its target (or back
  on its source). A restarted cvem reconciles them against oned before deciding anything.

Each cycle's history and marks are written in one transaction *before* acting (so a crash
mid-cycle at worst delays a shrink by a cooldown, never repeats one).
"""
from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from ..core.fleet import FleetHistory
from ..core.migration import InFlight as MigrationInFlight
from ..core.migration import MigrationState
from ..errors import ConfigError
from .observe import ReportMark

SCHEMA_VERSION = 1
_VM_IDS = "__vm_ids__"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS report_marks (
    vm_id INTEGER NOT NULL, source TEXT NOT NULL, marker TEXT NOT NULL,
    changed_at_s REAL NOT NULL, counter REAL, counter_at_s REAL,
    PRIMARY KEY (vm_id, source));
CREATE TABLE IF NOT EXISTS inflight (
    vm_id INTEGER PRIMARY KEY, host_id INTEGER NOT NULL, action TEXT NOT NULL,
    from_kib INTEGER NOT NULL, to_kib INTEGER NOT NULL, reason TEXT NOT NULL,
    status TEXT NOT NULL, started_at_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS migration_arrays (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS migrations (
    vm_id INTEGER PRIMARY KEY, from_host_id INTEGER NOT NULL, to_host_id INTEGER NOT NULL,
    size_kib INTEGER NOT NULL, started_s REAL NOT NULL, reason TEXT NOT NULL);
"""

_MIGRATION_ARRAYS = ("host_ids", "demand_kib", "times_s", "host_last_s", "moved_vm_ids",
                     "moved_at_s")


@dataclass(frozen=True)
class InFlight:
    vm_id: int
    host_id: int
    action: str
    from_kib: int
    to_kib: int
    reason: str
    status: str          # "pending" (sent, outcome unknown) or "issued" (oned accepted)
    started_at_s: float


def _to_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _from_bytes(data: bytes, what: str = "array") -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as error:   # numpy raises ValueError, EOFError, OSError... on garbage
        raise ConfigError(f"[cvem] state_db: {what} is corrupt ({type(error).__name__}); "
                          f"{RESET_HINT}") from None


def _nan_to_none(x):
    return None if x != x else x


def marker_path(path: str) -> str:
    """The file beside the state DB that says a state DB was created there: with it, a
    missing, emptied or table-less DB is a lost state, not a first start. A dot-file, so
    that ``rm state.db*`` (the DB and its -wal/-shm) does not take it along."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.created")


RESET_HINT = ("restore it from a backup, or start with empty state (cooldowns, histories and "
              "in-flight records forgotten) with `cvem run --reset-state`")


def _has_cvem_tables(path: str) -> bool:
    """Whether ``path`` is a sqlite file holding cvem's ``meta`` table (read-only look)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() \
                is not None
        finally:
            db.close()
    except sqlite3.Error:
        return False


def check_not_lost(path: str, reset: bool = False) -> bool:
    """Raise ConfigError when the state DB at ``path`` existed and is gone, emptied or
    without its tables (unless ``reset``); True when cvem starts there for the first time
    (or is reset), False when the DB is there."""
    if reset:
        return True
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    if exists and _has_cvem_tables(path):
        return False
    marker = marker_path(path)
    if exists:
        raise ConfigError(f"[cvem] state_db: {path} holds no cvem state tables (emptied, "
                          f"damaged or not cvem's); {RESET_HINT}")
    if os.path.exists(marker):
        how = "empty" if os.path.exists(path) else "missing"
        raise ConfigError(f"[cvem] state_db: {path} is {how} but {marker} says cvem kept "
                          f"its state there; {RESET_HINT}")
    return True


class StateStore:
    def __init__(self, path: str, readonly: bool = False, reset: bool = False):
        self.path = path
        first = False
        if path != ":memory:":
            first = check_not_lost(path, reset)
        if path != ":memory:" and not readonly:
            directory = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as error:
                raise ConfigError(f"[cvem] state_db: cannot create {directory}: "
                                  f"{error.strerror}") from None
        try:
            if readonly:
                if not os.path.exists(path):
                    self.db = sqlite3.connect(":memory:")
                else:
                    self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            else:
                if first and reset and os.path.exists(path):
                    for stale in (path, path + "-wal", path + "-shm"):
                        if os.path.exists(stale):
                            os.unlink(stale)
                self.db = sqlite3.connect(path, timeout=10)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            if not readonly or not os.path.exists(path):
                self.db.executescript(_SCHEMA)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                                (str(SCHEMA_VERSION),))
                self.db.commit()
        except sqlite3.Error as error:
            raise ConfigError(f"[cvem] state_db: {path}: {error}") from None
        if path != ":memory:" and not readonly:
            self._write_marker()
        self.readonly = readonly
        self.created = first and not readonly

    def _write_marker(self) -> None:
        marker = marker_path(self.path)
        if os.path.exists(marker):
            return
        try:
            with open(marker, "w", encoding="utf-8") as stream:
                stream.write(f"cvem state DB {os.path.abspath(self.path)} created "
                             f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}.\n"
                             "While this file exists, cvem refuses to start on a missing or "
                             "emptied state DB\n(cooldowns and in-flight actions would be "
                             "lost); `cvem run --reset-state` starts afresh.\n")
        except OSError as error:
            raise ConfigError(f"[cvem] state_db: cannot write {marker}: "
                              f"{error.strerror}") from None

    def close(self):
        self.db.close()

    # ------------------------------------------------------------------ history
    def load_history(self) -> FleetHistory:
        rows = dict(self.db.execute("SELECT name, data FROM history").fetchall())
        if _VM_IDS not in rows:
            return FleetHistory()
        vm_ids = _from_bytes(rows.pop(_VM_IDS), "history of VM ids").astype(np.int64)
        columns = {name: _from_bytes(data, f"history column {name!r}")
                   for name, data in rows.items()}
        columns = {k: v for k, v in columns.items() if v.shape[:1] == vm_ids.shape}
        return FleetHistory(vm_ids=vm_ids, columns=columns)

    def load_marks(self) -> Dict[Tuple[int, str], ReportMark]:
        out = {}
        for vm_id, source, marker, changed, counter, counter_at in self.db.execute(
                "SELECT vm_id, source, marker, changed_at_s, counter, counter_at_s "
                "FROM report_marks"):
            out[(vm_id, source)] = ReportMark(
                marker, changed, float("nan") if counter is None else counter,
                float("nan") if counter_at is None else counter_at)
        return out

    def save_cycle(self, history: FleetHistory,
                   marks: Mapping[Tuple[int, str], ReportMark],
                   migration_state: Optional[MigrationState] = None) -> None:
        """History and report marks (and the migration state) of one cycle, atomically."""
        rows = [(_VM_IDS, _to_bytes(history.vm_ids))]
        rows += [(name, _to_bytes(np.asarray(col))) for name, col in history.columns.items()]
        with self._errors(), self.db:
            if migration_state is not None:
                self._write_migration_state(migration_state)
            self.db.execute("DELETE FROM history")
            self.db.executemany("INSERT INTO history VALUES (?, ?)", rows)
            self.db.execute("DELETE FROM report_marks")
            self.db.executemany(
                "INSERT INTO report_marks VALUES (?, ?, ?, ?, ?, ?)",
                [(vm_id, source, m.marker, m.changed_at_s, _nan_to_none(m.counter),
                  _nan_to_none(m.counter_at_s)) for (vm_id, source), m in marks.items()])

    # ---------------------------------------------------------------- migrations
    def load_migration_state(self) -> MigrationState:
        """The overload protection state saved last (empty on a new or older state DB)."""
        try:
            arrays = dict(self.db.execute("SELECT name, data FROM migration_arrays"))
            flights = self.db.execute(
                "SELECT vm_id, from_host_id, to_host_id, size_kib, started_s, reason "
                "FROM migrations ORDER BY started_s, vm_id").fetchall()
        except sqlite3.OperationalError:   # read-only open of a state DB from before them
            return MigrationState()
        kwargs = {name: _from_bytes(arrays[name], f"migration state {name!r}")
                  for name in _MIGRATION_ARRAYS
                  if name in arrays}
        kwargs["in_flight"] = tuple(MigrationInFlight(int(v), int(f), int(t), int(k),
                                                      float(s), str(r))
                                    for v, f, t, k, s, r in flights)
        return MigrationState(**kwargs)

    def save_migration_state(self, state: MigrationState) -> None:
        with self.db:
            self._write_migration_state(state)

    def _write_migration_state(self, state: MigrationState) -> None:
        self.db.execute("DELETE FROM migration_arrays")
        self.db.executemany("INSERT INTO migration_arrays VALUES (?, ?)",
                            [(name, _to_bytes(np.asarray(getattr(state, name))))
                             for name in _MIGRATION_ARRAYS])
        self.db.execute("DELETE FROM migrations")
        self.db.executemany("INSERT INTO migrations VALUES (?, ?, ?, ?, ?, ?)",
                            [(m.vm_id, m.from_host_id, m.to_host_id, m.size_kib, m.started_s,
                              m.reason) for m in state.in_flight])

    # ----------------------------------------------------------------- in flight
    def load_inflight(self) -> Dict[int, InFlight]:
        with self._errors():
            return {row[0]: InFlight(*row) for row in self.db.execute(
                "SELECT vm_id, host_id, action, from_kib, to_kib, reason, status, "
                "started_at_s FROM inflight")}

    @contextlib.contextmanager
    def _errors(self):
        """A state DB damaged under a running cvem (tables dropped, file emptied): one
        clear error for the cycle, not a traceback."""
        try:
            yield
        except sqlite3.Error as error:
            raise ConfigError(f"[cvem] state_db: {self.path}: {error}; {RESET_HINT}") from None

    def record_inflight(self, rec: InFlight) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO inflight VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (rec.vm_id, rec.host_id, rec.action, rec.from_kib, rec.to_kib,
                             rec.reason, rec.status, rec.started_at_s))

    def set_inflight_status(self, vm_id: int, status: str) -> None:
        with self.db:
            self.db.execute("UPDATE inflight SET status = ? WHERE vm_id = ?", (status, vm_id))

    def drop_inflight(self, vm_id: int) -> None:
        with self.db:
            self.db.execute("DELETE FROM inflight WHERE vm_id = ?", (vm_id,))

    def meta(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def now_s() -> float:
    return time.time()
