"""oned 7.4 (sqlite) while its database is locked, provoked for real: another connection holds
an exclusive lock on the bed's one.db (as monitord's writes do under load) for longer than
oned's DB/TIMEOUT (2.5 s). oned then answers "User couldn't be authenticated" — the reply of a
wrong password — and cvem's adapter retries it instead of failing the cycle."""
import logging
import sqlite3
import threading

import pytest

from cvem.adapters.one import OneCloud

HOLD_S = 4.0   # longer than oned's busy timeout (2.5 s), shorter than the adapter's retries


def hold_exclusive_lock(db_path, locked: threading.Event):
    connection = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        locked.set()
        threading.Event().wait(HOLD_S)
        connection.execute("COMMIT")
    finally:
        locked.set()
        connection.close()


def test_a_locked_database_is_retried_not_an_authentication_failure(real_one, caplog):
    if not real_one.managed:
        pytest.skip("locks the test bed's own one.db")
    db_path = real_one.one_location / "var" / "one.db"
    oned_log = real_one.one_location / "var" / "oned.log"
    log_before = oned_log.read_text(errors="replace").count("database is locked")
    cloud = OneCloud(real_one.endpoint, real_one.auth, timeout_s=30)
    locked = threading.Event()
    holder = threading.Thread(target=hold_exclusive_lock, args=(db_path, locked))
    holder.start()
    try:
        assert locked.wait(30)
        with caplog.at_level(logging.INFO, logger="cvem.adapters.one"):
            read = cloud.read_cloud()      # would raise AuthFailed without the retries
    finally:
        holder.join(60)
    assert read.hosts
    assert cloud.transient_retries >= 1
    lines = [r.getMessage() for r in caplog.records if r.name == "cvem.adapters.one"]
    assert len(lines) == 1 and "User couldn't be authenticated" in lines[0], lines
    # the reply came from oned's own SQLITE_BUSY, as its log shows
    assert oned_log.read_text(errors="replace").count("database is locked") > log_before
