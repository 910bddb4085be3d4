"""libvirt calls with a deadline.

A libvirt call on a wedged libvirtd blocks inside C code forever and no Python signal
handler runs meanwhile, so ``alarm()`` does not help. Each call therefore runs in a daemon
worker thread and the caller waits on it with a timeout. A call that times out is
abandoned (the thread stays blocked), which is why the entry points finish with
``os._exit`` instead of waiting for threads at interpreter shutdown.
"""

import threading
import time


class HostError(Exception):
    """A failure whose message is already a complete sentence for the operator."""


class LibvirtUnavailableError(HostError):
    """libvirt-python is not importable on this host."""


class DomainNotFoundError(HostError):
    """No domain with that UUID or name on this libvirt connection."""


class LibvirtTimeoutError(HostError):
    """A libvirt call did not return within its deadline (hung or overloaded libvirtd)."""


def call_with_deadline(function, timeout_s, what):
    """Run ``function()`` and return its result, or raise LibvirtTimeoutError after timeout_s.

    Exceptions raised by ``function`` are re-raised in the caller.
    """
    outcome = {}
    finished = threading.Event()

    def worker():
        try:
            outcome["value"] = function()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error
        finally:
            finished.set()

    threading.Thread(target=worker, name="libvirt " + what, daemon=True).start()
    if not finished.wait(timeout_s):
        raise LibvirtTimeoutError("libvirt call %s did not return within %g s" % (what, timeout_s))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def import_libvirt():
    """Import libvirt-python lazily and silence its default error printer.

    The default handler prints every libvirt error to stderr as ``libvirt: ... error``;
    we report errors ourselves, in one line, in the form OpenNebula expects.
    """
    try:
        import libvirt
    except ImportError as error:
        raise LibvirtUnavailableError(
            "python3 libvirt module is not installed on this host (%s)" % error) from None
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


class BoundedLibvirt:
    """A libvirt connection whose every call has a deadline.

    ``call(what, fn, *args)`` runs ``fn(*args)`` with the per-call timeout, shortened when
    an overall deadline (``budget_s``) is closer.
    """

    def __init__(self, uri, call_timeout_s, budget_s=None):
        self.libvirt = import_libvirt()
        self.uri = uri
        self.call_timeout_s = call_timeout_s
        self.deadline = None if budget_s is None else time.monotonic() + budget_s
        self.conn = self.call("open(%s)" % uri, self.libvirt.open, uri)

    def remaining_s(self):
        if self.deadline is None:
            return self.call_timeout_s
        return max(0.0, min(self.call_timeout_s, self.deadline - time.monotonic()))

    def call(self, what, function, *args):
        timeout_s = self.remaining_s()
        if timeout_s <= 0:
            raise LibvirtTimeoutError("time budget exhausted before libvirt call %s" % what)
        return call_with_deadline(lambda: function(*args), timeout_s, what)

    def lookup_domain(self, deploy_id):
        """Find a domain by OpenNebula's DEPLOY_ID: the libvirt UUID (6.0+) or the name (5.x)."""
        libvirt = self.libvirt
        try:
            return self.call("lookupByUUIDString", self.conn.lookupByUUIDString, deploy_id)
        except libvirt.libvirtError as error:
            if error.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
                raise
        try:
            return self.call("lookupByName", self.conn.lookupByName, deploy_id)
        except libvirt.libvirtError as error:
            if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
        raise DomainNotFoundError("domain %s not found at %s" % (deploy_id, self.uri))

    def close(self):
        try:
            self.call("close", self.conn.close)
        except Exception:  # closing is best effort; the process is about to end
            pass


def is_domain_gone(libvirt, error):
    """True when the error means the domain no longer exists (stopped, migrated away)."""
    return isinstance(error, libvirt.libvirtError) and error.get_error_code() in (
        libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID)
