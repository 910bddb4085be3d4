"""The operator's path on the real oned 7.4 (issue 15, item 2): ``install.sh`` into a test
bed's ONE_LOCATION tree (a bed of this module's own, ``own_one``: it rewrites and restarts oned), oned restarted on the installed oned.conf/monitord.conf blocks, then
``cvem`` from the INSTALLED venv with the INSTALLED cvem.conf (edited as an operator would:
endpoint, auth, state path, the cluster it manages, the bed's live-resize VM_MAD, guards)
as a throwaway non-root user, on the bed's dummylive VMs; ``install.sh --uninstall`` last.
"""
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from realkit import GuestReports, drop_cluster, make_cluster

REPO = Path(__file__).resolve().parents[2]
MIB_KIB = 1024


def _run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)


def _install(ctx, *extra):
    # PYTHON unset, as an operator runs it: where python3 first on PATH is one the service
    # user cannot run (pyenv under /root), install.sh takes /usr/bin/python3 and says so
    env = dict(os.environ)
    env.pop("PYTHON", None)
    if os.environ.get("CLOUDVAMP_INSTALL_PYTHON"):
        env["PYTHON"] = os.environ["CLOUDVAMP_INSTALL_PYTHON"]
    return _run([str(REPO / "install.sh")] + ctx["install_args"] + list(extra), env=env)


def _restart_oned_keeping_config(one, attempts=3):
    """Stop the bed's oned and start it again on the config as it is now (start.sh would
    rewrite oned.conf/monitord.conf from their .dist): what an operator's restart does.
    oned gives monitord 10 s to start its drivers: on a loaded machine it may exit
    ("Driver initialization time out"), then it is started again."""
    inst = one.one_location
    for attempt in range(attempts):
        one.script("stop.sh")
        (inst / "var/lock/.lock").unlink(missing_ok=True)
        with open(inst / "var/oned.stdout", "ab") as out:
            oned = subprocess.Popen([str(inst / "bin/oned"), "-f"], cwd=str(inst / "var"),
                                    env=dict(os.environ, **one.env), stdout=out, stderr=out,
                                    start_new_session=True)
        (one.prefix / "run/oned.pid").write_text("%d\n" % oned.pid)

        def answering():
            try:
                return one.rpc("one.system.version")
            except Exception:
                return None if oned.poll() is None else "died"
        if one.wait(answering, "oned answering after restart", 60) != "died":
            return
    raise AssertionError("oned died %d times: %s" % (attempts, (inst / "var/oned.log").read_text()[-2000:]))


@pytest.fixture(scope="module")
def operator(own_one):
    one = own_one
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a throwaway service user with useradd")
    if not shutil.which("useradd"):
        pytest.skip("no useradd")
    user = "cvop%d" % own_one.port
    _run(["userdel", user])
    created = _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user])
    assert created.returncode == 0, created.stderr
    work = Path(tempfile.mkdtemp(prefix="cvem-operator-"))
    work.chmod(0o755)
    inst = one.one_location
    originals = {name: (inst / "etc" / name).read_bytes() for name in ("oned.conf", "monitord.conf")}
    install_args = ["--prefix", str(inst / "var/remotes"), "--etc-dir", str(inst / "etc"),
                    "--venv", str(work / "venv"), "--systemd-dir", str(work / "systemd"),
                    "--service-user", user]
    (work / "systemd").mkdir()
    state = work / "state"
    state.mkdir(mode=0o700)
    uid = pwd.getpwnam(user).pw_uid
    os.chown(state, uid, -1)
    cluster = make_cluster(one)
    ctx = dict(one=one, user=user, uid=uid, work=work, state=state, inst=inst,
               originals=originals, install_args=install_args, cluster=cluster,
               uninstalled=False)
    try:
        yield ctx
    finally:
        if not ctx["uninstalled"]:
            _install(ctx, "--uninstall")
            for name, data in originals.items():
                (inst / "etc" / name).write_bytes(data)
        (inst / "etc/cvem.conf").unlink(missing_ok=True)
        one.dummy_actions("resize")
        drop_cluster(one, *cluster)
        _run(["userdel", user])
        shutil.rmtree(work, ignore_errors=True)


def _configure(ctx, password=None):
    """The operator's edit of the installed cvem.conf; returns its path."""
    one, state = ctx["one"], ctx["state"]
    auth = state / "one_auth"
    user_name, _, real_password = one.auth.partition(":")
    auth.write_text("%s:%s\n" % (user_name, password or real_password))
    os.chown(auth, ctx["uid"], -1)
    auth.chmod(0o600)
    config = ctx["inst"] / "etc/cvem.conf"
    text = config.read_text()
    for key, value in (("endpoint", one.endpoint), ("auth_file", str(auth)),
                       ("state_db", str(state / "state.db")), ("clusters", str(ctx["cluster"][0])),
                       ("live_resize_vm_mads", "cloudvamp,kvm,dummylive"), ("metrics_address", ""),
                       ("period_s", "1")):
        text, count = re.subn(r"^%s\s*=.*$" % key, "%s = %s" % (key, value), text, count=1, flags=re.M)
        assert count == 1, key
    if "\ncooldown_s = 0\n" not in text:
        text = re.sub(r"^\[guards\]\s*$", "[guards]\ncooldown_s = 0\nmax_shrink_ratio = 0.25", text,
                      count=1, flags=re.M)
    config.write_text(text)
    return config


def _cvem(ctx, *args, **kwargs):
    return [str(ctx["work"] / "venv/bin/cvem"), "--config", str(ctx["inst"] / "etc/cvem.conf")] + list(args)


def _as_user(ctx, *args):
    return _run(_cvem(ctx, *args), user=ctx["user"], group=ctx["user"], cwd=str(ctx["state"]))


def _memory(one, vm):
    return int(one.vm(vm).findtext("TEMPLATE/MEMORY"))


def _settled(one, vm):
    one.wait(lambda: one.vm(vm).findtext("LCM_STATE") == "3", "VM %s RUNNING" % vm, 60)


def test_1_install_into_the_bed_and_oned_loads_the_drivers(operator):
    ctx, one = operator, operator["one"]
    done = _install(ctx)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (ctx["work"] / "venv/bin/cvem").is_file()
    assert (ctx["work"] / "systemd/cloudvamp-cvem.service").is_file()
    config = ctx["inst"] / "etc/cvem.conf"
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    assert config.stat().st_gid == pwd.getpwnam(ctx["user"]).pw_gid
    assert "cloudvamp" in (ctx["inst"] / "etc/oned.conf").read_text()
    assert "cloudvamp" in (ctx["inst"] / "etc/monitord.conf").read_text()
    _restart_oned_keeping_config(one)
    oned_log = (ctx["inst"] / "var/oned.log").read_text()
    assert re.search(r"cloudvamp", oned_log), oned_log[-3000:]
    host = one.rpc("one.host.allocate", "cvop-loopback-%d" % time.time_ns(), "cloudvamp", "cloudvamp", -1)
    try:
        info = one.xml("one.host.info", host)
        assert info.findtext("IM_MAD") == "cloudvamp" and info.findtext("VM_MAD") == "cloudvamp"
    finally:
        one.rpc("one.host.delete", host)
    one.wait(lambda: all(h.findtext("STATE") == "2" for h in one.hosts()
                         if int(h.findtext("ID")) in ctx["cluster"][1]),
             "the module's hosts MONITORED again", 120, step_s=1)


def test_2_wrong_password_is_one_line_and_non_zero(operator):
    _configure(operator, password="not-the-password")
    done = _as_user(operator, "run", "--once")
    assert done.returncode != 0
    # the log lines of the attempt, then one line that says why (no traceback)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "authenticated" in last, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_3_an_empty_cloud_cycle_exits_fine(operator):
    _configure(operator)
    done = _as_user(operator, "run", "--once")
    assert done.returncode == 0, done.stderr[-2000:]


def test_4_idle_vms_shrink_a_surging_one_grows(operator):
    ctx, one = operator, operator["one"]
    a = ctx["cluster"][1][0]
    idle_vm = one.make_vm(a, 4096, 4096)
    surging = one.make_vm(a, 4096, 4096)
    reports = GuestReports(one)
    for vm in (idle_vm, surging):
        reports.publish(vm, 400 * MIB_KIB, 4096 * MIB_KIB)
    done = _as_user(ctx, "run", "--once")
    assert done.returncode == 0, done.stderr[-2000:]
    for vm in (idle_vm, surging):
        _settled(one, vm)
        assert _memory(one, vm) == 3072
    reports.publish(surging, 3072 * MIB_KIB, 3072 * MIB_KIB, swap_used_kib=512 * MIB_KIB, pressure=True)
    reports.publish(idle_vm, 400 * MIB_KIB, 3072 * MIB_KIB)
    done = _as_user(ctx, "run", "--once")
    assert done.returncode == 0, done.stderr[-2000:]
    _settled(one, surging)
    _settled(one, idle_vm)
    assert _memory(one, surging) > 3072
    assert _memory(one, idle_vm) < 3072
    ctx["vms"] = (idle_vm, surging)


def test_5_a_driver_that_fails_resizes_is_backed_off(operator):
    ctx, one = operator, operator["one"]
    vm = one.make_vm(ctx["cluster"][1][1], 4096, 4096)
    reports = GuestReports(one)
    one.dummy_actions("resize", "failure")
    try:
        reports.publish(vm, 400 * MIB_KIB, 4096 * MIB_KIB)
        assert _as_user(ctx, "run", "--once").returncode == 0
        _settled(one, vm)
        assert _memory(one, vm) == 4096                     # the driver failed, oned rolled back
        resizes_before = len(one.vm(vm).findall("HISTORY_RECORDS/HISTORY"))
        reports.publish(vm, 400 * MIB_KIB, 4096 * MIB_KIB)
        done = _as_user(ctx, "run", "--once")
        assert done.returncode == 0, done.stderr[-2000:]
        _settled(one, vm)
        assert len(one.vm(vm).findall("HISTORY_RECORDS/HISTORY")) == resizes_before   # not retried
        last = one.vm(vm).findtext("USER_TEMPLATE/CLOUDVAMP_LAST_ACTION") or ""
        assert last.endswith("FAILED, rolled back"), last
    finally:
        one.dummy_actions("resize")


def test_6_cvem_run_survives_an_oned_restart(operator):
    ctx, one = operator, operator["one"]
    log = ctx["state"] / "run.log"
    with open(log, "w") as out:
        service = subprocess.Popen(_cvem(ctx, "run"), user=ctx["user"], group=ctx["user"],
                                   cwd=str(ctx["state"]), stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(3)
        assert service.poll() is None, log.read_text()
        _restart_oned_keeping_config(one)
        one.wait(lambda: "oned reachable again" in log.read_text(), "cvem back at work", 90)
        assert service.poll() is None, log.read_text()
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(30)
    assert code == 0, log.read_text()[-3000:]


def test_7_uninstall_restores_the_config_byte_for_byte(operator):
    ctx = operator
    done = _install(ctx, "--uninstall")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ctx["uninstalled"] = True
    for name, data in ctx["originals"].items():
        assert (ctx["inst"] / "etc" / name).read_bytes() == data, name
    assert not (ctx["work"] / "venv").exists()
    assert not (ctx["work"] / "systemd/cloudvamp-cvem.service").exists()
