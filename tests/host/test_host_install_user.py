"""Issue 10, defects 2 and 10: what install.sh leaves must work for the unit's user, and
cloudvamp's probes are installed (or install.sh fails) whatever the kvm probe tree holds."""
import configparser
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import hostkit
import pytest
from hostkit import build_fake_one, run_install

COMMON = ("--no-package",)
ROOT = Path(hostkit.REPO)


def unit_settings(text):
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings[key.strip()] = value.strip()
    return settings


@pytest.fixture
def throwaway_user():
    """An unprivileged user and group made for this test only (root only)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a throwaway user to read the installed config as")
    if not shutil.which("useradd"):
        pytest.skip("useradd not available")
    name = "cvt" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", name], check=False, stderr=subprocess.DEVNULL)


@pytest.fixture
def open_fake():
    """A fake OpenNebula tree under a directory other users may traverse (pytest's own
    tmp dirs are root-only)."""
    base = tempfile.mkdtemp(prefix="cvem-install-")
    os.chmod(base, 0o755)
    try:
        yield build_fake_one(Path(base) / "one")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_user(user, *command):
    return subprocess.run(["runuser", "-u", user, "--"] + list(command), capture_output=True,
                          text=True, timeout=120)


def test_the_units_user_can_read_the_installed_config(open_fake, throwaway_user):
    fake = open_fake
    for path in (fake.root, fake.etc):
        os.chmod(path, 0o755)
    run_install(fake, *COMMON, "--service-user", throwaway_user)
    unit = unit_settings((fake.systemd / "cloudvamp-cvem.service").read_text())
    assert unit["User"] == throwaway_user and unit["Group"] == throwaway_user
    config = fake.etc / "cvem.conf"
    st = config.stat()
    assert st.st_mode & 0o777 == 0o640 and st.st_gid == pwd.getpwnam(throwaway_user).pw_gid
    read = as_user(throwaway_user, "cat", str(config))
    assert read.returncode == 0, read.stderr
    assert read.stdout == (ROOT / "etc" / "cvem.conf").read_text()
    # and cvem itself, as that user, accepts it
    python = cvem_python_for(throwaway_user)
    check = as_user(throwaway_user, *python, "-m", "cvem", "--config", str(config),
                    "check-config")
    assert check.returncode == 0, check.stderr
    assert ": OK (" in check.stdout


def cvem_python_for(user):
    """A command that runs this tree's cvem as ``user``: the test's own interpreter when
    that user may run it, else the system python3 of the same version on this venv's
    packages (a venv made from a python under /root is not executable by others)."""
    import sys
    import sysconfig
    if as_user(user, sys.executable, "-c", "import cvem").returncode == 0:
        return [sys.executable]
    system = shutil.which("python3", path="/usr/bin:/bin")
    path = os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"],
                            sysconfig.get_paths()["platlib"]])
    if system:
        command = ["env", "PYTHONPATH=" + path, system]
        version = as_user(user, *command, "-c", "import sys, cvem; print(sys.version_info[:2])")
        if version.returncode == 0 and version.stdout.strip() == str(sys.version_info[:2]):
            return command
    pytest.skip("no python3 that user %s may run with this tree's cvem" % user)


def test_a_config_kept_from_an_earlier_install_is_made_readable(open_fake, throwaway_user):
    fake = open_fake
    config = fake.etc / "cvem.conf"
    config.write_text("[cvem]\n")
    os.chmod(config, 0o600)                        # root:root 0600, as an old install left it
    run_install(fake, *COMMON, "--service-user", throwaway_user)
    assert config.read_text() == "[cvem]\n"        # kept
    assert as_user(throwaway_user, "cat", str(config)).returncode == 0


def test_unit_has_a_state_directory_for_the_default_state_db(tmp_path):
    fake = build_fake_one(tmp_path / "one")
    run_install(fake, *COMMON)
    unit = unit_settings((fake.systemd / "cloudvamp-cvem.service").read_text())
    parser = configparser.ConfigParser()
    parser.read(ROOT / "etc" / "cvem.conf")
    from cvem.config import ServiceParams
    state_db = ServiceParams().state_db
    assert os.path.dirname(state_db) == "/var/lib/" + unit["StateDirectory"]
    assert unit["User"] == "oneadmin"


def test_operations_doc_shows_the_unit_install_sh_installs(tmp_path):
    fake = build_fake_one(tmp_path / "one")
    run_install(fake, *COMMON, "--venv", "/opt/cloudvamp/venv", "--etc-dir", str(fake.etc))
    installed = unit_settings((fake.systemd / "cloudvamp-cvem.service").read_text())
    doc = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"```ini\n(.*?)```", doc, re.S).group(1)
    documented = unit_settings(block)
    installed["ExecStart"] = installed["ExecStart"].replace(str(fake.etc), "/etc/one")
    assert documented == installed
    assert "cloudvamp-cvem.service" in doc and "/usr/bin/cvem" not in doc


@pytest.mark.parametrize("missing", ["vm/monitor", "host/system", "vm"])
def test_probes_are_installed_when_kvm_lacks_their_category(tmp_path, missing):
    fake = build_fake_one(tmp_path / "one")
    shutil.rmtree(fake.remotes / "im" / "kvm-probes.d" / missing)
    result = run_install(fake, *COMMON)
    probes = fake.remotes / "im" / "cloudvamp-probes.d"
    ours = ROOT / "remotes" / "im" / "cloudvamp-probes.d"
    for probe in ours.glob("*/*/*"):
        installed = probes / probe.relative_to(ours)
        assert installed.is_file() and os.access(installed, os.X_OK), installed
    assert "does not exist" in result.stdout


def test_a_dangling_category_link_is_replaced_by_the_probes(tmp_path):
    """An upgrade left cloudvamp-probes.d/vm/monitor pointing at a kvm dir that is gone."""
    fake = build_fake_one(tmp_path / "one")
    blocker = fake.remotes / "im" / "cloudvamp-probes.d" / "vm" / "monitor"
    blocker.parent.mkdir(parents=True)
    blocker.symlink_to("../../kvm-probes.d/vm/monitor")
    shutil.rmtree(fake.remotes / "im" / "kvm-probes.d" / "vm" / "monitor")
    run_install(fake, *COMMON)
    probe = blocker / "cloudvamp_balloon.py"
    assert not blocker.is_symlink() and probe.is_file() and os.access(probe, os.X_OK)


@pytest.fixture
def private_python():
    """A python3 the way pyenv puts one first on root's PATH: under a directory only root
    may enter (/root is 0700), so another user gets "Permission denied" running it."""
    system = "/usr/bin/python3"
    if not os.access(system, os.X_OK):
        pytest.skip("no /usr/bin/python3 to stand in for a private one")
    base = Path(tempfile.mkdtemp(prefix="cvem-private-python-"))
    os.chmod(base, 0o700)
    (base / "python3").symlink_to(system)
    try:
        yield base / "python3"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_python_the_service_user_cannot_run_is_refused_in_one_line(open_fake, throwaway_user,
                                                                      private_python):
    fake = open_fake
    env = dict(os.environ, PYTHON=str(private_python))
    done = run_install(fake, "--service-user", throwaway_user, check=False, env=env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("install.sh: error: %s cannot be run by the "
                                                   "service user %s" % (private_python, throwaway_user)), done.stderr
    assert "PYTHON=/usr/bin/python3" in lines[0]
    assert not (fake.root / "venv").exists()                 # refused before changing anything
    assert not (fake.remotes / "vmm" / "cloudvamp").exists()


def test_the_system_python_is_taken_when_the_first_on_path_is_private(open_fake, throwaway_user,
                                                                       private_python):
    fake = open_fake
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["PATH"] = "%s:/usr/bin:/bin:/usr/sbin:/sbin" % private_python.parent
    done = run_install(fake, "--service-user", throwaway_user, "--pip-options", "--no-deps", env=env)
    assert "cannot be run by the service user %s: building the venv with /usr/bin/python3" % (
        throwaway_user) in done.stdout
    runs = as_user(throwaway_user, str(fake.root / "venv" / "bin" / "python"), "-c", "import cvem")
    assert runs.returncode == 0, runs.stderr


def test_a_venv_left_on_a_private_python_is_refused(open_fake, throwaway_user, private_python):
    fake = open_fake
    subprocess.run([str(private_python), "-m", "venv", "--without-pip", str(fake.root / "venv")],
                   check=True)
    done = run_install(fake, "--service-user", throwaway_user, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == ("install.sh: error: %s cannot be run by the service user %s "
                                   "(its python is not readable or executable by that user): remove "
                                   "%s and run install.sh again with PYTHON=/usr/bin/python3" % (
                                       fake.root / "venv" / "bin" / "python", throwaway_user,
                                       fake.root / "venv")), done.stderr
