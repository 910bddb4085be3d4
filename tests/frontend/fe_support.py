"""Helpers shared by the front-end tests (a module name no other test dir uses)."""
import gzip
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.doubles.oned import GIB, OnedDouble  # noqa: E402

RECORDINGS = os.path.join(ROOT, "tests", "fixtures", "opennebula", "real-7.4")
XSD_DIR = os.path.dirname(RECORDINGS)


def recording(name):
    path = os.path.join(RECORDINGS, name)
    if name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            return stream.read()
    with open(path, encoding="utf-8") as stream:
        return stream.read()


def write_config(tmp_path, extra="", guards="cooldown_s = 0\n"):
    path = tmp_path / "cvem.conf"
    path.write_text("[cvem]\nstate_db = %s\nmax_actions_per_s = 1000\nmetrics_address = 127.0.0.1:0\n%s\n[guards]\n%s"
                    % (tmp_path / "state.db", extra, guards))
    return str(path)


def make_service(oned, tmp_path, extra="", guards="cooldown_s = 0\n", db=None):
    from cvem.adapters.one import OneCloud
    from cvem.config import load_config
    from cvem.service.runner import Service
    from cvem.service.state import StateStore
    config = load_config(write_config(tmp_path, extra, guards))
    store = StateStore(db or config.service.state_db)
    return Service(config, OneCloud(oned.endpoint, oned.session, timeout_s=5), store)


class Clock:
    """cvem's clock and the double's, moved together (10 s per cycle without waiting)."""

    def __init__(self, oned):
        self.oned, self.offset = oned, 0.0

    def __call__(self):
        return time.time() + self.offset

    def advance(self, seconds):
        self.offset += seconds
        self.oned.advance(seconds)


def settle(oned, timeout_s=5.0):
    oned.wait_until(lambda: all(v.lcm not in (4, 66) for v in oned.vms.values()), timeout_s)


__all__ = ["Clock", "GIB", "recording", "make_service", "settle", "write_config", "RECORDINGS",
           "XSD_DIR"]
