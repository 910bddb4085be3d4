"""The publisher as a guest runs it: a subprocess PUTting to the OneGate double."""

import glob
import os
import socket
import subprocess
import sys

import pytest

from tests.doubles.guest import PUBLISHER_PATH, REPO_ROOT, run_publisher

VM_ID = 42


def test_done_when_command(onegate, fake_proc):
    """Issue 5, Done when: `ONEGATE_ENDPOINT=… VMID=… TOKENTXT=… python3 onegate/<publisher>
    --once --proc DIR` PUTs the keys and exits 0."""
    env = dict(os.environ)
    env.update(onegate.publisher_env(VM_ID))
    result = subprocess.run(
        [sys.executable, "onegate/cloudvamp-publisher", "--once", "--proc", fake_proc.root],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=30)
    assert result.returncode == 0, result.stderr
    template = onegate.user_templates.get(VM_ID)
    assert template["CLOUDVAMP_MEM_TOTAL_KIB"] == "2097152"
    assert template["CLOUDVAMP_MEM_AVAILABLE_KIB"] == "1048576"
    assert template["CLOUDVAMP_MEM_USED_KIB"] == "1048576"
    assert template["CLOUDVAMP_SWAP_USED_KIB"] == "0"
    assert template["CLOUDVAMP_SWAP_IN_KIB_S"] == "0.0"
    assert template["CLOUDVAMP_PSI_SOME_AVG10"] == "0.00"
    # SEQ starts at the wall-clock second, so a restarted publisher never repeats one
    assert abs(int(template["CLOUDVAMP_SEQ"]) - int(template["CLOUDVAMP_TIME"])) <= 5
    assert int(template["CLOUDVAMP_TIME"]) > 1600000000
    [request] = onegate.requests
    assert (request.method, request.path, request.status, request.body_form) == (
        "PUT", "/vm", 200, "data")


def test_once_with_a_wrong_token_fails(onegate, fake_proc):
    env = onegate.publisher_env(VM_ID)
    env["TOKENTXT"] = "not-the-token"
    result = run_publisher(env, "--once", "--rate-window", "0", "--proc", fake_proc.root)
    assert result.returncode == 1
    assert "401" in result.stderr and "Not authorized" in result.stderr
    assert "not-the-token" not in result.stderr + result.stdout
    assert onegate.user_templates.get(VM_ID) == {}


def test_once_against_a_vm_onegate_does_not_know(onegate, fake_proc):
    env = onegate.publisher_env(VM_ID)
    env["VMID"] = "43"
    result = run_publisher(env, "--once", "--rate-window", "0", "--proc", fake_proc.root)
    assert result.returncode == 1


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_once_with_onegate_down_fails_quickly(fake_proc):
    env = {"ONEGATE_ENDPOINT": "http://127.0.0.1:%d" % _closed_port(), "VMID": "1",
           "TOKENTXT": "SECRET-TOKEN-VALUE"}
    result = run_publisher(env, "--once", "--rate-window", "0", "--proc", fake_proc.root,
                           "--timeout", "5")
    assert result.returncode == 1
    assert "unreachable" in result.stderr
    assert "SECRET-TOKEN-VALUE" not in result.stderr + result.stdout


def test_no_endpoint_is_a_config_error(fake_proc):
    result = run_publisher({"VMID": "1", "TOKENTXT": "t"}, "--once", "--proc", fake_proc.root)
    assert result.returncode == 2
    assert "no OneGate endpoint" in result.stderr


def test_loop_mode_exits_on_config_error_too(fake_proc):
    result = run_publisher({}, "--proc", fake_proc.root)
    assert result.returncode == 2


def test_raw_body_form(onegate, fake_proc):
    result = run_publisher(onegate.publisher_env(VM_ID), "--once", "--raw-body",
                           "--rate-window", "0", "--proc", fake_proc.root)
    assert result.returncode == 0, result.stderr
    assert onegate.requests[-1].body_form == "raw"
    assert onegate.user_templates.get(VM_ID)["CLOUDVAMP_MEM_USED_KIB"] == "1048576"


def test_dry_run_prints_and_needs_no_credentials(fake_proc):
    result = run_publisher({}, "--once", "--dry-run", "--rate-window", "0",
                           "--proc", fake_proc.root)
    assert result.returncode == 0, result.stderr
    assert "CLOUDVAMP_MEM_USED_KIB=1048576" in result.stdout.splitlines()


def test_credentials_from_one_env_file(onegate, fake_proc, tmp_path):
    credentials = onegate.publisher_env(VM_ID)
    one_env = tmp_path / "one_env"
    one_env.write_text("".join('export %s="%s"\n' % item for item in credentials.items()))
    result = subprocess.run(
        [sys.executable, PUBLISHER_PATH, "--once", "--rate-window", "0", "--proc",
         fake_proc.root, "--one-env", str(one_env), "--context-dir", os.devnull],
        env={"PATH": os.environ["PATH"]}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert int(onegate.user_templates.get(VM_ID)["CLOUDVAMP_SEQ"]) > 1600000000


def test_loop_publishes_repeatedly_then_stops_after_cycles(onegate, fake_proc):
    result = run_publisher(onegate.publisher_env(VM_ID), "--proc", fake_proc.root,
                           "--interval", "0.05", "--heartbeat", "0", "--cycles", "5")
    assert result.returncode == 0, result.stderr
    assert [r.status for r in onegate.requests] == [200] * 5
    seqs = [int(r.attrs["CLOUDVAMP_SEQ"]) for r in onegate.requests]
    assert seqs == list(range(seqs[0], seqs[0] + 5))


def test_loop_survives_onegate_errors(onegate, fake_proc):
    onegate.fail_next(2, status=500, message="[one.vm.update] oned is busy")
    result = run_publisher(onegate.publisher_env(VM_ID), "--proc", fake_proc.root,
                           "--interval", "0.02", "--backoff-cap", "0.1", "--heartbeat", "0",
                           "--cycles", "4")
    assert result.returncode == 0, result.stderr
    assert [r.status for r in onegate.requests] == [500, 500, 200, 200]
    assert "oned is busy" in result.stderr
    assert "publishing again after 2 failed attempt(s)" in result.stderr
    # SEQ counts attempts: the two refused ones used up two numbers
    third, fourth = (int(r.attrs["CLOUDVAMP_SEQ"]) for r in onegate.requests[2:])
    assert fourth == third + 1
    assert onegate.user_templates.get(VM_ID)["CLOUDVAMP_SEQ"] == str(fourth)


def _other_pythons():
    candidates = ["/usr/bin/python3"]  # Debian's, without the venv's packages
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.6*/bin/python3")))
    return [path for path in candidates if os.access(path, os.X_OK)]


@pytest.mark.parametrize("python", _other_pythons() or [None])
def test_runs_on_system_and_oldest_python(onegate, fake_proc, python):
    """Catch a non-stdlib import or a post-3.6 feature: guests have only what they ship."""
    if python is None:
        pytest.skip("no /usr/bin/python3 nor a pyenv 3.6 on this machine")
    # -S: no site-packages/dist-packages either, only the standard library
    result = run_publisher(onegate.publisher_env(VM_ID), "--once", "--rate-window", "0.1",
                           "--proc", fake_proc.root, python=python, python_args=("-S",))
    assert result.returncode == 0, result.stderr
    assert onegate.user_templates.get(VM_ID)["CLOUDVAMP_MEM_USED_KIB"] == "1048576"
