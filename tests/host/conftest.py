"""Fast tier of the host side: probes and actions against libvirt's test driver."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostkit  # noqa: E402

from hostkit import UUID_ONE_5, UUID_ONE_6, UUID_ONE_7, UUID_WILD  # noqa: E402


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """An OpenNebula remotes tree with cloudvamp installed by install.sh (no package)."""
    fake = hostkit.build_fake_one(tmp_path_factory.mktemp("one"))
    hostkit.run_install(fake, "--no-package")
    return fake


@pytest.fixture
def node_uri(tmp_path):
    """A test-driver host: one-5 ballooned 4096->2048 MiB (stats period 10), one-6 at full
    2048 MiB without a stats period, one-7 shut off, and a wild (non-OpenNebula) domain."""
    return hostkit.write_test_node(tmp_path / "node.xml", [
        hostkit.fake_domain_xml("one-5", UUID_ONE_5, 4096, 2048, stats_period_s=10),
        hostkit.fake_domain_xml("one-6", UUID_ONE_6, 2048, 2048),
        hostkit.fake_domain_xml("one-7", UUID_ONE_7, 1024, 1024, running=False),
        hostkit.fake_domain_xml("wild-vm", UUID_WILD, 1024, 512),
    ])


@pytest.fixture
def hung_libvirt_uri(tmp_path):
    """A libvirt URI whose 'daemon' accepts connections and never answers (a wedged libvirtd)."""
    import socket
    path = tmp_path / "hung-libvirt-sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)  # the kernel completes connects; nobody ever reads or replies
    yield "qemu+unix:///system?socket=%s" % path
    server.close()
