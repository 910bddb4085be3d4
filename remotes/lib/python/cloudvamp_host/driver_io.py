"""stderr conventions of OpenNebula's one_vmm_exec for actions.

Lines ``INFO: <vm_id> text`` (or ERROR/WARN/DEBUG) go to that VM's log; without the id
(``INFO: text``) OpenNebula 7.4 logs them for VM -1, i.e. only in oned.log
(DriverExecHelper#get_info_from_execution). Every other stderr line is joined into the
error text oned shows when the action fails. So a failing action prints exactly one plain
line (the reason) and exits non-zero.
"""

import os
import subprocess
import sys

from .bounded import HostError


class ActionError(Exception):
    """The action failed; the message is the one line oned will show."""


_VM_ID = []  # the VM this action runs for (one_vmm_exec appends <vm_id> <host> to argv)


def log(level, message):
    vm_id = (_VM_ID[0] + " ") if _VM_ID else ""
    sys.stderr.write("%s: %scloudvamp: %s\n" % (level, vm_id, " ".join(str(message).split())))


def log_info(message):
    log("INFO", message)


def log_error(message):
    log("ERROR", message)


def finish(exit_code):
    """Flush and leave without joining threads: an abandoned libvirt call may still block."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(exit_code)


def fail_line(message):
    """Write the one plain failure line (whitespace collapsed so it stays one line)."""
    sys.stderr.write(" ".join(str(message).split()) + "\n")


def run_action(name, action, argv):
    """Run ``action(argv, stdin_bytes) -> exit code`` with one_vmm_exec's conventions.

    Any failure becomes exit 1 plus one plain stderr line naming the action; nothing is
    printed to stdout except what the action itself prints (stdout is the driver's info).
    """
    if len(argv) >= 3 and str(argv[-2]).isdigit():
        _VM_ID[:] = [str(argv[-2])]
    try:
        stdin_bytes = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
        exit_code = action(argv, stdin_bytes)
    except (ActionError, HostError) as error:
        fail_line("cloudvamp %s: %s" % (name, error))
        exit_code = 1
    except Exception as error:  # libvirtError, timeouts, missing libvirt module, bugs
        kind = "libvirt" if type(error).__name__ == "libvirtError" else type(error).__name__
        fail_line("cloudvamp %s: %s: %s" % (name, kind, error))
        exit_code = 1
    finish(exit_code)


def call_stock_kvm(action, argv, stdin_bytes, script_dir):
    """Run ``<script_dir>/../kvm/<action>`` with our argv and stdin; return its CompletedProcess."""
    stock = os.path.normpath(os.path.join(script_dir, "..", "kvm", action))
    if not os.access(stock, os.X_OK):
        raise ActionError("stock kvm action %s is missing or not executable" % stock)
    return subprocess.run([stock] + list(argv[1:]), input=stdin_bytes,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def pass_through(completed):
    """Hand a stock action's stdout and stderr on as ours; return its exit code."""
    sys.stdout.buffer.write(completed.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(completed.stderr)
    sys.stderr.flush()
    return completed.returncode


def run_stock_kvm(action, argv, stdin_bytes, script_dir):
    """Run ``<script_dir>/../kvm/<action>`` with our argv and stdin, passing its output through."""
    return pass_through(call_stock_kvm(action, argv, stdin_bytes, script_dir))
