"""The OpenNebula adapter: the only module that imports pyone.

Reads go through pyone's XML-RPC proxy *without* its typed bindings (the raw XML is parsed
by :mod:`cvem.adapters.one_xml`: the bindings drop the probe's CLOUDVAMP_* MONITORING keys
and are ~2-40x slower); actions use pyone's typed calls, whose exceptions are mapped onto
cvem's (:class:`~cvem.ports.AuthFailed`, :class:`~cvem.ports.OneCallFailed`,
:class:`~cvem.ports.Unreachable`) with oned's own message. The session is never logged.

Endpoint and credentials are found as OpenNebula's CLI tools find them: explicit value,
else ``$ONE_XMLRPC`` / ``$ONE_AUTH`` (a file), else ``http://localhost:2633/RPC2`` /
``~/.one/one_auth``.
"""
from __future__ import annotations

import logging
import os
import re
import time
import xmlrpc.client
from typing import Mapping, Optional

from ..errors import AdapterError, ConfigError
from ..ports import (AuthFailed, CloudRead, OneCallFailed, RawHost, RawVm, Unreachable,
                     classify_failure)
from . import one_xml

LOG = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://localhost:2633/RPC2"

# oned 7.4 on sqlite shares one.db with monitord; a statement that waits longer than oned.conf's
# DB/TIMEOUT (2.5 s) for the other's lock fails with SQLITE_BUSY ("database is locked" in
# oned.log), and the request fails with the reply of whatever read came back empty
# (SqliteDB::exec_ext, PoolSQL::get, Request::failure_message in the 7.4 source):
#   the session's user not read  -> "User couldn't be authenticated, aborting call." (0x0100)
#   the object not read          -> "Error getting <object> [<id>]."                  (0x0400)
#   a pool dump failed           -> "Internal error"                                  (0x2000)
# oned gives the first two for a wrong password and a deleted object as well, and in each case
# it refused before changing anything: so these are retried a few times with a short back-off
# and then reported as they are (a wrong password still fails, about 2 s later).
TRANSIENT_RETRY_DELAYS_S = (0.25, 0.5, 1.0)


def transient_reply(message: str, code: int) -> bool:
    """True for the replies oned 7.4 also gives while its sqlite database is locked."""
    if code == 0x0100:
        return True
    if code == 0x0400:
        return "Error getting " in message
    return code == 0x2000 and message.rstrip(". ").endswith("] Internal error")


_URL_CREDENTIALS = re.compile(r"(?<=//)[^/@\s'\"]+@")


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` of any URL in it replaced by ``***@``."""
    return _URL_CREDENTIALS.sub("***@", str(text))


def resolve_endpoint(explicit: Optional[str] = None, environ: Optional[Mapping] = None) -> str:
    environ = os.environ if environ is None else environ
    endpoint = explicit or environ.get("ONE_XMLRPC") or DEFAULT_ENDPOINT
    if not endpoint.startswith(("http://", "https://")):
        # pyone >= 7.2 would silently pick its gRPC client for anything else.
        raise ConfigError(f"[one] endpoint: {redact(endpoint)!r} must be an "
                          f"http(s)://…/RPC2 URL")
    return endpoint


def _unreachable_why(exc: Exception) -> str:
    """The useful end of a requests/urllib3 error chain, on one line."""
    import requests
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = " ".join(str(exc).split())
    errno_text = re.findall(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if errno_text:
        return errno_text[-1].strip()
    return redact(f"{type(exc).__name__}: {text}")


def auth_file_path(explicit: Optional[str] = None, environ: Optional[Mapping] = None) -> str:
    environ = os.environ if environ is None else environ
    return explicit or environ.get("ONE_AUTH") or os.path.join(
        os.path.expanduser("~"), ".one", "one_auth")


def read_session(path: str) -> str:
    """The ``user:password`` line of an OpenNebula auth file (the file name is reported on
    error, never its content)."""
    if ":" in path and not os.path.exists(path):
        # Most likely the secret itself given instead of the file: never echo it.
        raise ConfigError("[one] auth_file: the value given is not a file (it looks like "
                          "'user:password'; give the path of a file holding it)")
    try:
        with open(path, encoding="utf-8") as stream:
            for line in stream:
                line = line.strip()
                if line and not line.startswith("#"):
                    if ":" not in line:
                        raise ConfigError(f"[one] auth_file: {path} must hold 'user:password'")
                    return line
    except OSError as error:
        raise ConfigError(f"[one] auth_file: cannot read {path}: {error.strerror}") from None
    raise ConfigError(f"[one] auth_file: {path} is empty")


def _map_pyone_error(error: Exception, method: str) -> Exception:
    import pyone
    message = str(error)
    if isinstance(error, pyone.OneAuthenticationException):
        return AuthFailed(message)
    codes = ((pyone.OneAuthorizationException, 0x0200), (pyone.OneNoExistsException, 0x0400),
             (pyone.OneActionException, 0x0800), (pyone.OneApiException, 0x1000),
             (pyone.OneInternalException, 0x2000))
    for cls, code in codes:
        if isinstance(error, cls):
            return OneCallFailed(message, code, classify_failure(message, code))
    return AdapterError(f"{method}: {message}")


class OneCloud:
    """:class:`cvem.ports.Cloud` over oned's XML-RPC API (pyone 6.10+ / 7.x)."""

    def __init__(self, endpoint: str, session: str, timeout_s: float = 30.0,
                 page_size: int = 2000, https_verify: bool = True,
                 retry_delays_s=TRANSIENT_RETRY_DELAYS_S):
        import pyone
        from pyone.server_xrpc import RequestsTransport

        self.endpoint = redact(endpoint)   # for logs and messages; pyone gets the real one
        self.page_size = int(page_size)
        server = pyone.OneServer(endpoint, session=session, https_verify=https_verify)

        class _Transport(RequestsTransport):
            """pyone's transport with a per-request timeout and HTTP keep-alive (pyone's
            ``timeout=`` only sets the process-wide socket default, which requests ignores)."""

            def __init__(self):
                super().__init__()
                import requests
                self._http = requests.Session()

            def request(self, host, handler, request_body, verbose=False):
                import requests
                url = self._build_url(host, handler)
                try:
                    resp = self._http.post(url, data=request_body, headers=self.headers,
                                           verify=self.https_verify, timeout=timeout_s)
                    resp.raise_for_status()
                except requests.RequestException as exc:
                    raise Unreachable(f"oned at {redact(endpoint)} unreachable: "
                                      f"{_unreachable_why(exc)}") from None
                return self.parse_response(resp)

        transport = _Transport()
        transport.set_https(endpoint.startswith("https"))
        transport.set_https_verify(https_verify)
        server._ServerProxy__transport = transport  # the proxy keeps it name-mangled
        self._server = server
        self.calls = 0
        self.transient_retries = 0
        self.retry_delays_s = tuple(retry_delays_s)

    def __repr__(self):  # never show the session
        return f"OneCloud({self.endpoint!r})"

    # ------------------------------------------------------------------ raw reads
    def call_raw(self, method: str, *params):
        """Call ``one.<method>`` and return the body of a success reply (XML as text)."""
        return self._retrying(method, self._call_raw_once, method, *params)

    def _retrying(self, method: str, attempt, *args):
        """``attempt(*args)``, tried again after oned's database-locked replies
        (:data:`TRANSIENT_RETRY_DELAYS_S`); one log line when a retry got through."""
        started, first = time.monotonic(), None
        for tries, delay_s in enumerate(self.retry_delays_s + (None,), start=1):
            try:
                result = attempt(*args)
            except (AuthFailed, OneCallFailed) as error:
                code = 0x0100 if isinstance(error, AuthFailed) else error.code
                message = str(error) if isinstance(error, AuthFailed) else error.message
                if delay_s is None or not transient_reply(message, code):
                    raise
                first = first or message
                self.transient_retries += 1
                time.sleep(delay_s)
                continue
            if tries > 1:
                LOG.info("%s: oned answered %r (also its answer while its database is "
                         "locked), then succeeded on try %d after %.1f s", method, first,
                         tries, time.monotonic() - started)
            return result

    def _call_raw_once(self, method: str, *params):
        self.calls += 1
        try:
            reply = self._server._do_request(method, self._server._cast_parms(params))
        except (Unreachable, AuthFailed):
            raise
        except (OSError, xmlrpc.client.ProtocolError) as exc:
            raise Unreachable(f"oned at {self.endpoint} unreachable: {redact(exc)}") from None
        except Exception as exc:  # pyone.OneException from an XML-RPC fault, bad replies
            raise AdapterError(f"{method}: {redact(exc)}") from None
        if not isinstance(reply, (list, tuple)) or len(reply) < 3:
            raise AdapterError(f"{method}: unexpected reply shape {type(reply).__name__}")
        if reply[0]:
            return reply[1]
        message, code = str(reply[1]), int(reply[2])
        if code == 0x0100:
            raise AuthFailed(message)
        raise OneCallFailed(message, code, classify_failure(message, code))

    def read_vms(self):
        """Every VM but DONE ones, full bodies, paged (offset, -page_size), deduplicated."""
        vms = {}
        offset = 0
        while True:
            if self.page_size > 0:
                xml = self.call_raw("one.vmpool.infoextended", -2, offset, -self.page_size, -1)
            else:
                xml = self.call_raw("one.vmpool.infoextended", -2, -1, -1, -1)
            page, bad = one_xml.parse_vm_pool_checked(
                xml, on_error=lambda e: LOG.warning("skipping a malformed VM: %s", e))
            del xml
            for vm in page:
                vms.setdefault(vm.vm_id, vm)
            if self.page_size <= 0 or len(page) + bad < self.page_size:
                break
            offset += self.page_size
        return list(vms.values())

    def read_cloud(self) -> CloudRead:
        timings = {}
        t0 = time.perf_counter()
        vms = self.read_vms()
        t1 = time.perf_counter()
        hosts = one_xml.parse_host_pool(self.call_raw("one.hostpool.info"))
        t2 = time.perf_counter()
        monitoring = one_xml.parse_monitoring(self.call_raw("one.vmpool.monitoring", -2, 0))
        t3 = time.perf_counter()
        timings.update(read_vms_s=t1 - t0, read_hosts_s=t2 - t1, read_monitoring_s=t3 - t2)
        return CloudRead(vms=vms, hosts=hosts, monitoring=monitoring, timings_s=timings)

    def vm_info(self, vm_id: int) -> RawVm:
        return one_xml.parse_vm(self.call_raw("one.vm.info", int(vm_id)))

    def vm_brief(self, vm_id: int) -> RawVm:
        """One VM, fresh, with only its last history record (``vmpool.infoextended``
        restricted to its ID): ``one.vm.info`` returns every record, ~480 bytes per resize."""
        vms = one_xml.parse_vm_pool(self.call_raw("one.vmpool.infoextended", -2, int(vm_id),
                                                  int(vm_id), -1))
        for vm in vms:
            if vm.vm_id == vm_id:
                return vm
        raise OneCallFailed(f"[one.vmpool.infoextended] virtual machine [{vm_id}] not found",
                            0x0400, "missing")

    def history_actions(self, vm_id: int):
        """[(ACTION, UID)] of the VM's history records (a full ``one.vm.info``: rare)."""
        return one_xml.parse_history_actions(self.call_raw("one.vm.info", int(vm_id)))

    def whoami(self) -> int:
        """The ID of the user cvem connects as."""
        from lxml import etree
        return int(etree.fromstring(self.call_raw("one.user.info", -1).encode()).findtext("ID"))

    def host_info(self, host_id: int) -> RawHost:
        return one_xml.parse_host(self.call_raw("one.host.info", int(host_id)))

    # --------------------------------------------------------------------- actions
    def _typed(self, method: str, fn, *args):
        return self._retrying(method, self._typed_once, method, fn, *args)

    def _typed_once(self, method: str, fn, *args):
        self.calls += 1
        try:
            return fn(*args)
        except (Unreachable, AuthFailed):
            raise
        except (OSError, xmlrpc.client.ProtocolError) as exc:
            raise Unreachable(f"oned at {self.endpoint} unreachable: {redact(exc)}") from None
        except Exception as exc:
            import pyone
            if isinstance(exc, pyone.OneException):
                raise _map_pyone_error(exc, method) from None
            raise AdapterError(f"{method}: {type(exc).__name__}: {exc}") from None

    def resize_memory(self, vm_id: int, memory_mib: int, enforce: bool) -> None:
        self._typed("one.vm.resize", self._server.vm.resize, int(vm_id),
                    f"MEMORY={int(memory_mib)}", bool(enforce))

    def update_vm_attributes(self, vm_id: int, attrs: Mapping[str, str]) -> None:
        self._typed("one.vm.update", self._server.vm.update, int(vm_id),
                    template_text(attrs), 1)

    def update_host_attributes(self, host_id: int, attrs: Mapping[str, str]) -> None:
        self._typed("one.host.update", self._server.host.update, int(host_id),
                    template_text(attrs), 1)

    def migrate(self, vm_id: int, host_id: int, live: bool = True,
                enforce: bool = True) -> None:
        self._typed("one.vm.migrate", self._server.vm.migrate, int(vm_id), int(host_id),
                    bool(live), bool(enforce), -1, 0)

    # -------------------------------------------- HA and OneDRS (cvem/service/leader.py)
    def raft_state(self) -> int:
        """``one.zone.raftstatus``'s STATE: 0 SOLO, 1 CANDIDATE, 2 FOLLOWER, 3 LEADER."""
        return one_xml.parse_raft_state(self.call_raw("one.zone.raftstatus"))

    def drs_plan_vm_ids(self, cluster_ids) -> frozenset:
        """VMs with a OneDRS plan action READY or APPLYING in these clusters' plans
        (``one.cluster.info`` carries the cluster's PLAN; the pool call does not)."""
        busy = set()
        for cluster_id in cluster_ids:
            try:
                busy |= one_xml.parse_drs_plan_vm_ids(
                    self.call_raw("one.cluster.info", int(cluster_id), False))
            except OneCallFailed as error:
                if error.kind != "missing":
                    raise
        return frozenset(busy)

    def read_document(self, doc_type: int, name: str) -> Optional[tuple]:
        """(id, text of TEMPLATE/CVEM_STATE) of the caller's own document of this type
        and name, or None."""
        xml = self.call_raw("one.documentpool.info", -3, -1, -1, int(doc_type))
        return one_xml.find_document(xml, name, "CVEM_STATE")

    def write_document(self, doc_id: Optional[int], doc_type: int, name: str,
                       text: str) -> int:
        """Create (``doc_id`` None) or replace the document's CVEM_STATE; returns its id."""
        body = one_xml.cdata_template({"CVEM_STATE": text})
        if doc_id is None:
            doc_id = int(self.call_raw("one.document.allocate",
                                       one_xml.cdata_template({"NAME": name}) , int(doc_type)))
        self.call_raw("one.document.update", int(doc_id), body, 1)
        return int(doc_id)


def template_text(attrs: Mapping[str, str]) -> str:
    """``KEY="value"`` lines, quotes and backslashes escaped as oned's parser expects."""
    lines = []
    for key, value in attrs.items():
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key}="{text}"')
    return "\n".join(lines)


def connect(endpoint: Optional[str] = None, auth_file: Optional[str] = None,
            timeout_s: float = 30.0, page_size: int = 2000) -> OneCloud:
    """An :class:`OneCloud` from explicit values or the OpenNebula environment."""
    url = resolve_endpoint(endpoint)
    session = read_session(auth_file_path(auth_file))
    return OneCloud(url, session, timeout_s=timeout_s, page_size=page_size)
