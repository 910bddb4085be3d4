"""Real tier: a genuine OpenNebula 7.4.0 front-end (oned + monitord + scheduler + Ruby drivers,
dummy hypervisor) from ``../shared/oned-testbed``, on loopback.

The session fixture ``real_one`` builds the test bed (``build.sh``, idempotent: unpacks the
prebuilt tree once), starts it with ``FRESH=1`` (5 hosts MONITORED -- the first 3 on VM_MAD
``dummylive`` with live resize, the others ``dummy`` -- and 19 VMs RUNNING, ~20 s) and stops it
at teardown. It yields a :class:`RealOne` with the endpoint, the auth, the prefix and helpers.

Environment:
  CLOUDVAMP_REAL=require       (scripts/test sets it when CI=true) "cannot come up" fails instead
                               of skipping
  CLOUDVAMP_REAL_PORT          oned's port (default 2733, never a user's 2633); monitord, hook and
                               OneGate ports shift with it
  CLOUDVAMP_REAL_PREFIX        where the test bed lives (default <tmp>/cloudvamp-real-<port>)
  CLOUDVAMP_REAL_PORT2         the port of the second bed of ``own_one`` (modules that restart
                               or rewrite oned; default CLOUDVAMP_REAL_PORT + 10)
  CLOUDVAMP_TESTBED            the test bed's scripts (default <repo>/../shared/oned-testbed)
  CLOUDVAMP_REAL_REUSE=1       keep the bed running after the session and reuse a running one
                               (quick iterations while writing tests)
  CLOUDVAMP_REAL_ENDPOINT      use an existing OpenNebula instead (its XML-RPC endpoint) ...
  CLOUDVAMP_REAL_AUTH          ... with this "user:password" or file holding it; nothing is built,
                               started or stopped, and tests needing the bed's dummy drivers skip
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realkit import RealOne, drop_cluster, make_cluster, real_port, terminate_vms_of  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _testbed_dir():
    return Path(os.environ.get("CLOUDVAMP_TESTBED", REPO.parent / "shared" / "oned-testbed"))


def real_prefix():
    default = Path(tempfile.gettempdir()) / ("cloudvamp-real-%d" % real_port())
    return Path(os.environ.get("CLOUDVAMP_REAL_PREFIX", default))


_BRING_UP_FAILURE = []  # a session fixture that failed is retried per test: remember why


def _unavailable(reason):
    _BRING_UP_FAILURE[:] = [reason]
    if os.environ.get("CLOUDVAMP_REAL") == "require":
        pytest.fail("real tier required (CLOUDVAMP_REAL=require) but unavailable: " + reason,
                    pytrace=False)
    pytest.skip("real tier skipped: " + reason)


def _read_env_sh(path):
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line and "$" not in line:
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env


def _existing_one():
    auth = os.environ.get("CLOUDVAMP_REAL_AUTH", "")
    if auth and Path(auth).is_file():
        auth = Path(auth).read_text().strip()
    if ":" not in auth:
        _unavailable("CLOUDVAMP_REAL_ENDPOINT is set but CLOUDVAMP_REAL_AUTH is not user:password "
                     "or a file holding it")
    one = RealOne(endpoint=os.environ["CLOUDVAMP_REAL_ENDPOINT"], auth=auth)
    try:
        one.rpc("one.system.version")
    except Exception as error:
        _unavailable("cannot reach %s: %s" % (one.endpoint, error))
    return one


def _start_bed(reuse=False, port=None, prefix=None, **start_env):
    """Build (idempotent) and start a test bed on ``port`` (default the tier's) under
    ``prefix``; with ``reuse``, take a running one there as it is."""
    testbed_dir = _testbed_dir()
    if not (testbed_dir / "start.sh").is_file():
        _unavailable("no OpenNebula test bed at %s (set CLOUDVAMP_TESTBED or CLOUDVAMP_REAL_ENDPOINT)"
                     % testbed_dir)
    for command in ("bash", "ruby", "setsid"):
        if not shutil.which(command):
            _unavailable("missing %s (as root, scripts/setup --real installs the bed's packages)" % command)
    port = port or real_port()
    prefix = prefix or real_prefix()
    bed = RealOne(endpoint="http://127.0.0.1:%d/RPC2" % port, auth="", prefix=prefix,
                  testbed_dir=testbed_dir, port=port)
    if reuse and (prefix / "env.sh").is_file():
        try:
            bed.env = _read_env_sh(prefix / "env.sh")
            bed.env["RUBYLIB"] = str(prefix / "one" / "lib" / "ruby")
            bed.auth = Path(bed.env["ONE_AUTH"]).read_text().strip()
            bed.rpc("one.system.version")
            return bed
        except Exception:
            pass   # not running: start it
    try:
        subprocess.run(["bash", str(testbed_dir / "stop.sh")], env=dict(os.environ, PREFIX=str(prefix)),
                       capture_output=True, timeout=60)   # a bed left over by a killed session
        built = subprocess.run(["bash", str(testbed_dir / "build.sh")], env=dict(os.environ, PREFIX=str(prefix)),
                               capture_output=True, text=True, timeout=1800)
        if built.returncode != 0:
            _unavailable("build.sh failed: %s" % (built.stderr or built.stdout).strip()[-500:])
        for attempt in range(3):
            try:
                bed.script("start.sh", FRESH="1", **start_env)
                break
            except RuntimeError:
                # oned gives each driver 10 s to answer INIT (Driver.h): on a loaded machine
                # monitord, starting its Ruby drivers, can miss that ("Driver initialization
                # time out") -- start again
                bed.script("stop.sh")
                if attempt == 2:
                    raise
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        _unavailable(str(error)[-1500:])
    bed.env = _read_env_sh(prefix / "env.sh")
    bed.env["RUBYLIB"] = str(prefix / "one" / "lib" / "ruby")
    bed.auth = Path(bed.env["ONE_AUTH"]).read_text().strip()
    return bed


def _stop_bed(bed):
    subprocess.run(["bash", str(bed.testbed_dir / "stop.sh")], env=dict(os.environ, PREFIX=str(bed.prefix)),
                   capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def real_one():
    """A running OpenNebula 7.4 front-end for the whole session (see the module docstring)."""
    if _BRING_UP_FAILURE:
        _unavailable(_BRING_UP_FAILURE[0])
    if os.environ.get("CLOUDVAMP_REAL_ENDPOINT"):
        yield _existing_one()
        return
    reuse = os.environ.get("CLOUDVAMP_REAL_REUSE") == "1"
    bed = _start_bed(reuse, ONEGATE=os.environ.get("CLOUDVAMP_REAL_ONEGATE", "1"),
                     PROBE_PERIOD_S=os.environ.get("CLOUDVAMP_REAL_PROBE_PERIOD_S", "5"))
    try:
        yield bed
    finally:
        if not reuse:
            _stop_bed(bed)


@pytest.fixture(scope="module")
def own_one():
    """A second test bed for one module, started and stopped with it, for tests that rewrite
    or restart oned (the session's bed stays untouched): port CLOUDVAMP_REAL_PORT2 (default
    the tier's port + 10), prefix <tmp>/cloudvamp-real-<that port>, one live-resize host and no
    VM of the bed's own (tests make their clusters), no OneGate."""
    if _BRING_UP_FAILURE:
        _unavailable(_BRING_UP_FAILURE[0])
    if os.environ.get("CLOUDVAMP_REAL_ENDPOINT"):
        pytest.skip("needs a test bed of its own (it rewrites and restarts oned); "
                    "CLOUDVAMP_REAL_ENDPOINT points at an existing OpenNebula")
    port = int(os.environ.get("CLOUDVAMP_REAL_PORT2", real_port() + 10))
    bed = _start_bed(port=port, prefix=Path(tempfile.gettempdir()) / ("cloudvamp-real-%d" % port),
                     ONEGATE="0", PROBE_PERIOD_S="5", VMS_PER_HOST="0", LIVE_HOSTS="1")
    try:
        yield bed
    finally:
        _stop_bed(bed)


@pytest.fixture(scope="module")
def real_cluster(real_one):
    """(cluster_id, [A, B, D]): a cluster of its own for a test module, hosts A and B on the
    live-resize VM_MAD dummylive, D on the stock dummy (no live resize), 16 GiB each.
    Point cvem at it with ``clusters = <cluster_id>``."""
    cluster_id, hosts = make_cluster(real_one, ("dummylive", "dummylive", "dummy"))
    yield cluster_id, hosts
    drop_cluster(real_one, cluster_id, hosts)


@pytest.fixture
def empty_cluster(real_one, real_cluster):
    """real_cluster, with every VM a test left in it terminated afterwards."""
    yield real_cluster
    terminate_vms_of(real_one, real_cluster[0])


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.real)
