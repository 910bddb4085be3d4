"""The IM probe contract: argv ``<im_mad> <host_id> <hostname>``, monitord's configuration
XML on stdin, OpenNebula template text on stdout, and **always exit 0**.

monitord treats a non-zero exit of any probe in a directory as a failure of the whole
category; for host/system that puts the host in ERROR. So every error is reported on stderr
and the probe still prints what it could collect.
"""

import sys
import time

from .bounded import call_with_deadline
from .driver_io import finish

# monitord-client writes the configuration and closes stdin; never wait longer than this.
_STDIN_TIMEOUT_S = 2.0


def read_probe_stdin():
    if sys.stdin is None or sys.stdin.isatty():
        return b""
    try:
        return call_with_deadline(sys.stdin.buffer.read, _STDIN_TIMEOUT_S, "read stdin")
    except Exception:
        return b""


def warn(probe_name, message):
    sys.stderr.write("cloudvamp %s: %s\n" % (probe_name, " ".join(str(message).split())))


def run_probe(probe_name, collect, argv):
    """Run ``collect(argv, stdin_bytes, warn) -> list of lines`` and print them; exit 0."""
    try:
        stdin_bytes = read_probe_stdin()
        lines = collect(argv, stdin_bytes, lambda message: warn(probe_name, message))
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
    except BaseException as error:  # anything, even a bug: never fail the category
        warn(probe_name, "%s: %s" % (type(error).__name__, error))
    finish(0)


def now_epoch_s():
    return int(time.time())
