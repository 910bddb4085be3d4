"""onegate/context/cloudvamp-init.sh, run into a scratch root with a stub systemctl."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tests.doubles.guest import PUBLISHER_PATH, REPO_ROOT

INIT_SCRIPT = os.path.join(REPO_ROOT, "onegate", "context", "cloudvamp-init.sh")
UNIT_FILE = os.path.join(REPO_ROOT, "onegate", "context", "cloudvamp-publisher.service")


def test_embedded_unit_matches_the_unit_file():
    with open(INIT_SCRIPT) as stream:
        script = stream.read()
    embedded = re.search(r"<<'UNIT'\n(.*?)^UNIT$", script, re.S | re.M).group(1)
    with open(UNIT_FILE) as stream:
        assert embedded == stream.read()


@pytest.fixture
def guest(tmp_path):
    """A scratch root, a context-CD-like dir holding only the publisher, a stub systemctl."""
    root = tmp_path / "root"
    cd = tmp_path / "cd"
    bin_dir = tmp_path / "bin"
    for path in (root, cd, bin_dir):
        path.mkdir()
    with open(PUBLISHER_PATH) as stream:
        (cd / "cloudvamp-publisher").write_text(stream.read())
    calls = tmp_path / "systemctl.calls"
    active_flag = tmp_path / "active"
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\necho \"$*\" >> %s\n"
        "case \"$*\" in *is-active*) [ -f %s ] ;; *restart*) touch %s ;; esac\n"
        % (calls, active_flag, active_flag))
    (bin_dir / "systemctl").chmod(0o755)

    def run(shell=("sh",), **extra_env):
        env = {"PATH": "%s:%s" % (bin_dir, os.environ["PATH"]), "CLOUDVAMP_DESTDIR": str(root)}
        env.update(extra_env)
        # one-context runs INIT_SCRIPTS from a copy of the CD: cwd holds the files
        result = subprocess.run(list(shell) + [INIT_SCRIPT], cwd=str(cd), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=30)
        lines = calls.read_text().splitlines() if calls.exists() else []
        calls.write_text("")
        return result, lines

    return root, cd, run


@pytest.mark.parametrize("shell", [("sh",), ("dash",), ("busybox", "sh")])
def test_systemd_install_is_idempotent(guest, shell):
    if shutil.which(shell[0]) is None:
        pytest.skip("%s not installed" % shell[0])
    root, cd, run = guest
    result, calls = run(shell=shell, CLOUDVAMP_INIT_SYSTEM="systemd")
    assert result.returncode == 0, result.stderr
    installed = root / "usr/local/sbin/cloudvamp-publisher"
    assert installed.read_text() == (cd / "cloudvamp-publisher").read_text()
    assert os.access(str(installed), os.X_OK)
    with open(UNIT_FILE) as stream:
        assert (root / "etc/systemd/system/cloudvamp-publisher.service").read_text() == stream.read()
    assert calls == ["daemon-reload", "enable cloudvamp-publisher.service",
                     "--no-block restart cloudvamp-publisher.service"]

    result, calls = run(shell=shell, CLOUDVAMP_INIT_SYSTEM="systemd")  # e.g. the next boot
    assert result.returncode == 0, result.stderr
    assert calls == ["enable cloudvamp-publisher.service",
                     "is-active --quiet cloudvamp-publisher.service"]
    assert "unchanged and running" in result.stderr


def test_new_publisher_version_restarts(guest):
    root, cd, run = guest
    run(CLOUDVAMP_INIT_SYSTEM="systemd")
    (cd / "cloudvamp-publisher").write_text((cd / "cloudvamp-publisher").read_text() + "\n# v2\n")
    result, calls = run(CLOUDVAMP_INIT_SYSTEM="systemd")
    assert "--no-block restart cloudvamp-publisher.service" in calls
    assert (root / "usr/local/sbin/cloudvamp-publisher").read_text().endswith("# v2\n")


def test_extra_arguments_go_to_a_dropin(guest):
    root, cd, run = guest
    result, calls = run(CLOUDVAMP_INIT_SYSTEM="systemd", CLOUDVAMP_PUBLISHER_ARGS="--heartbeat 30")
    assert result.returncode == 0, result.stderr
    dropin = root / "etc/systemd/system/cloudvamp-publisher.service.d/args.conf"
    assert "ExecStart=/usr/local/sbin/cloudvamp-publisher --heartbeat 30" in dropin.read_text()
    assert "daemon-reload" in calls


def test_opt_out_stops_and_disables(guest):
    root, cd, run = guest
    result, calls = run(CLOUDVAMP_INIT_SYSTEM="systemd", CLOUDVAMP_PUBLISHER="NO")
    assert result.returncode == 0
    assert calls == ["--no-block stop cloudvamp-publisher.service",
                     "disable cloudvamp-publisher.service"]


def test_missing_publisher_is_a_clear_error(guest):
    root, cd, run = guest
    (cd / "cloudvamp-publisher").unlink()
    result, calls = run(CLOUDVAMP_INIT_SYSTEM="systemd")
    assert result.returncode == 1
    assert "add it to FILES_DS" in result.stderr
    assert calls == []


def test_fallback_without_systemd_starts_one_loop(guest, tmp_path):
    root, cd, run = guest
    # A stand-in publisher that just stays alive, so no real OneGate is needed.
    stand_in = tmp_path / "stand-in"
    stand_in.write_text("#!/bin/sh\nexec sleep 120\n")
    stand_in.chmod(0o755)
    pid_file = root / "var/run/cloudvamp-publisher.pid"
    loop_pid = None
    try:
        result, calls = run(CLOUDVAMP_INIT_SYSTEM="none", CLOUDVAMP_PUBLISHER_SRC=str(stand_in))
        assert result.returncode == 0, result.stderr
        assert calls == []
        loop_pid = int(pid_file.read_text())
        os.kill(loop_pid, 0)  # alive

        result, _ = run(CLOUDVAMP_INIT_SYSTEM="none", CLOUDVAMP_PUBLISHER_SRC=str(stand_in))
        assert "unchanged and running" in result.stderr
        assert int(pid_file.read_text()) == loop_pid  # no second loop

        result, _ = run(CLOUDVAMP_INIT_SYSTEM="none", CLOUDVAMP_PUBLISHER="NO")
        assert not pid_file.exists()
        _wait_gone(loop_pid)
        loop_pid = None
    finally:
        if loop_pid is not None:
            os.kill(loop_pid, signal.SIGTERM)


def _wait_gone(pid, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError("loop %d still running" % pid)
