"""Issue 10, defect 6: a state DB that existed and is lost is an error, never a fresh start.

cvem tells a first start from a lost DB by the marker it writes beside the DB when it
creates it (``.<state_db name>.created``); ``cvem run --reset-state`` starts afresh on purpose.
"""
import glob
import os
import sqlite3

import pytest
from click.testing import CliRunner

from cvem.cli import cli
from cvem.errors import ConfigError
from cvem.service.state import StateStore
from fe_support import GIB, write_config

MIB = 1024


@pytest.fixture
def used_db(oned, auth_file, tmp_path):
    """A state DB after one real cycle (a VM shrunk, so it has a cooldown)."""
    host = oned.add_host("kvm-1", total_mem_kib=16 * GIB)
    vm = oned.add_vm("idle", host, 4096, 4096)
    oned.set_guest(vm, 300 * MIB)
    config = write_config(tmp_path, guards="cooldown_s = 600\n")
    result = run(oned, auth_file, config, "run", "--once")
    assert result.exit_code == 0, result.output
    return config, str(tmp_path / "state.db")


def run(oned, auth_file, config, *args):
    return CliRunner().invoke(cli, ["--endpoint", oned.endpoint, "--auth", auth_file,
                                    "--config", config] + list(args))


def one_error_line(result):
    out = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(out) == 1 and out[0].startswith("Error: "), \
        result.output
    return out[0]


def test_first_start_creates_the_db_and_its_marker(tmp_path):
    path = str(tmp_path / "sub" / "state.db")
    store = StateStore(path)
    assert store.created and (tmp_path / "sub" / ".state.db.created").is_file()
    store.close()
    again = StateStore(path)
    assert not again.created


def test_a_db_from_before_the_marker_gets_one(tmp_path):
    path = str(tmp_path / "state.db")
    StateStore(path).close()
    (tmp_path / ".state.db.created").unlink()
    StateStore(path).close()
    assert (tmp_path / ".state.db.created").is_file()


@pytest.mark.parametrize("damage", ["deleted", "emptied", "table-less"])
def test_a_lost_db_is_one_clear_error_for_every_command(oned, auth_file, used_db, damage):
    config, path = used_db
    if damage == "deleted":                    # as `rm state.db*` would
        for name in glob.glob(path + "*"):
            os.unlink(name)
    elif damage == "emptied":
        open(path, "w").close()
    else:
        db = sqlite3.connect(path)
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            db.execute("DROP TABLE %s" % name)
        db.commit()
        db.close()
    resizes = len(oned.calls_of("one.vm.resize"))
    for command in (("run", "--once"), ("plan",), ("status",)):
        line = one_error_line(run(oned, auth_file, config, *command))
        assert "state_db" in line and "--reset-state" in line
    assert len(oned.calls_of("one.vm.resize")) == resizes          # nothing acted on
    # the operator's explicit way out
    result = run(oned, auth_file, config, "run", "--once", "--reset-state")
    assert result.exit_code == 0, result.output
    assert run(oned, auth_file, config, "run", "--once").exit_code == 0


def test_a_corrupt_history_blob_is_a_clean_error(oned, auth_file, used_db):
    config, path = used_db
    db = sqlite3.connect(path)
    names = [n for (n,) in db.execute("SELECT name FROM history")]
    assert names
    db.execute("UPDATE history SET data = ? WHERE name = ?", (b"\x93NUMPY garbage", names[-1]))
    db.commit()
    db.close()
    line = one_error_line(run(oned, auth_file, config, "run", "--once"))
    assert "is corrupt" in line and "Traceback" not in line
    with pytest.raises(ConfigError, match="is corrupt"):
        StateStore(path).load_history()


def test_reset_forgets_the_old_state_on_purpose(oned, auth_file, used_db):
    config, path = used_db
    assert StateStore(path).load_history().vm_ids.size
    store = StateStore(path, reset=True)
    assert store.load_history().vm_ids.size == 0 and store.created
    assert os.path.isfile(os.path.join(os.path.dirname(path), ".state.db.created"))


def test_tables_dropped_under_a_running_cvem_fail_the_cycle_in_one_line(oned, tmp_path):
    from fe_support import make_service
    oned.add_host("kvm-1", total_mem_kib=16 * GIB)
    service = make_service(oned, tmp_path)
    service.cycle()
    service.store.db.execute("DROP TABLE inflight")
    with pytest.raises(ConfigError, match="state_db: .*no such table"):
        service.cycle()
