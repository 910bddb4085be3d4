"""Fixtures for the in-guest publisher and the OneGate double."""

import os
import sys

import pytest

# `tests.doubles` must import whether pytest was started as `python -m pytest` (root on
# sys.path) or as the bare `pytest` script (it is not).
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.doubles.guest import FakeProc, load_publisher  # noqa: E402
from tests.doubles.onegate import OneGateDouble  # noqa: E402

VM_ID = 42


@pytest.fixture
def onegate():
    """A started OneGate double with VM 42 registered; stopped at teardown."""
    double = OneGateDouble()
    double.start()
    double.register_vm(VM_ID)
    try:
        yield double
    finally:
        double.stop()


@pytest.fixture
def fake_proc(tmp_path):
    """A fake /proc with 2 GiB total, 1 GiB available, no swap activity, PSI at zero."""
    return FakeProc(tmp_path / "proc").write()


@pytest.fixture(scope="session")
def publisher():
    """onegate/cloudvamp-publisher imported as a module."""
    return load_publisher()
