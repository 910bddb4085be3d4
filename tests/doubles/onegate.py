"""A OneGate double: a real HTTP server on 127.0.0.1 that answers like onegate-server.

It implements ``PUT /vm`` (and a minimal ``GET /vm``) with the checks and status codes of
OpenNebula's Sinatra server (``src/onegate/onegate-server.rb`` and ``OneGateCloudAuth``,
6.x/7.x), and hands the parsed attributes to a pluggable sink, so a fake oned can receive
them::

    from tests.doubles.onegate import OneGateDouble

    with OneGateDouble() as onegate:                 # default sink: onegate.user_templates
        token = onegate.register_vm(42)              # -> the X-ONEGATE-TOKEN to send
        env = onegate.publisher_env(42)              # ONEGATE_ENDPOINT, VMID, TOKENTXT
        ...
        assert onegate.user_templates.get(42)["CLOUDVAMP_SEQ"] == "1"

    # plugging in a fake oned:
    OneGateDouble(merge_user_template=oned.merge_user_template,     # (vm_id, {K: V}) -> None
                  delete_user_template_attr=oned.delete_attr,       # (vm_id, K) -> bool found
                  read_user_template=oned.user_template)            # (vm_id) -> {K: V}

A sink callable raises ``VmNotFound`` when oned has no such VM (the server answers 404 with
oned's message) and any other exception for an oned failure (500 with its text).

What the real server does and this double mirrors, in its order of checks:

* 403 ``Action (update) on resource (vm) not supported`` when the permission is disabled
  (``permissions`` below; on by default, as in onegate-server.conf);
* 401 ``Not authorized`` when ``X-ONEGATE-TOKEN`` or ``X-ONEGATE-VMID`` is missing, the VM
  is unknown, or the token does not match that VM;
* 404 with oned's message when the VM cannot be read after authentication;
* body: the ``data`` parameter (query string or form body) when present, else the raw
  body; ``type`` 1 (default) merges into USER_TEMPLATE, 2 deletes the attribute named;
* 403 ``Attribute (X) cannot be modified`` / ``cannot be deleted`` for the restricted
  attributes SCHED_REQUIREMENTS, SERVICE_ID and ROLE_NAME;
* 500 ``attribute not found`` when deleting an absent attribute; 500 with oned's message
  when the template does not parse;
* 200 with an empty body on success, ``Content-Type: application/json``.

Differences, on purpose: the real token is base64(AES-256-CBC(first 32 bytes of the
creating user's TOKEN_PASSWORD, zero IV, "<VMID>:<STIME>")) checked against one.vm.info; the
double keeps a plain registry {vm_id: token} (``register_vm``). Values are stripped of
surrounding blanks and quotes, which the real server's ``escape_attr`` + oned's template
parser do for ``K=V`` lines (for ``K = V`` oned would keep a leading blank). Vector
attributes (``K=[A=1]``) are stored as their raw text. Attribute names are upper-cased, as
oned's template parser does.
"""

import base64
import collections
import contextlib
import json
import os
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn

RESTRICTED_ATTRS = ("SCHED_REQUIREMENTS", "SERVICE_ID", "ROLE_NAME")
DEFAULT_PERMISSIONS = {"vm": {"show": True, "update": True}}

TYPE_MERGE = 1
TYPE_DELETE = 2


class VmNotFound(LookupError):
    """Raised by a sink when oned has no such VM (the double answers 404)."""


class TemplateSyntaxError(ValueError):
    """The attribute text does not parse as an OpenNebula template."""


RecordedRequest = collections.namedtuple(
    "RecordedRequest", "method path vm_id_header token_matched status body_form attrs")
RecordedRequest.__doc__ = """One request the double served. The token itself is not kept.

body_form is "data" (form/query parameter), "raw" or None (GET); attrs is the parsed
attribute dict for a merge, [name] for a delete, None otherwise."""


class InMemoryUserTemplates(object):
    """Default sink: USER_TEMPLATE per VM in a dict, safe across server threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._templates = {}

    def add_vm(self, vm_id):
        with self._lock:
            self._templates.setdefault(vm_id, collections.OrderedDict())

    def merge_user_template(self, vm_id, attrs):
        with self._lock:
            if vm_id not in self._templates:
                raise VmNotFound("[one.vm.info] Error getting virtual machine [%d]." % vm_id)
            self._templates[vm_id].update(attrs)

    def delete_user_template_attr(self, vm_id, name):
        with self._lock:
            if vm_id not in self._templates:
                raise VmNotFound("[one.vm.info] Error getting virtual machine [%d]." % vm_id)
            return self._templates[vm_id].pop(name, None) is not None

    def read_user_template(self, vm_id):
        with self._lock:
            if vm_id not in self._templates:
                raise VmNotFound("[one.vm.info] Error getting virtual machine [%d]." % vm_id)
            return dict(self._templates[vm_id])

    def get(self, vm_id):
        """USER_TEMPLATE of vm_id as a plain dict ({} for an unknown VM)."""
        with self._lock:
            return dict(self._templates.get(vm_id, {}))

    def remove_vm(self, vm_id):
        """Forget the VM, as if it was terminated: its requests then get 404."""
        with self._lock:
            self._templates.pop(vm_id, None)


_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def parse_template_attrs(text):
    """OneGate attribute text ("K=V" lines) -> ordered {NAME: value}; raises TemplateSyntaxError."""
    attrs = collections.OrderedDict()
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name):
            raise TemplateSyntaxError("syntax error, unexpected %r in %r" % (name[:40], line[:80]))
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        attrs[name.upper()] = value
    return attrs


class _ThreadingHTTPServer(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class OneGateDouble(object):
    """The OneGate double. Use as a context manager, or start()/stop().

    Parameters:
        merge_user_template(vm_id: int, attrs: dict) -> None
        delete_user_template_attr(vm_id: int, name: str) -> bool  (False: not present)
        read_user_template(vm_id: int) -> dict                     (for GET /vm)
            Each defaults to the in-memory store ``self.user_templates``.
        permissions: like onegate-server.conf ``:permissions:`` ({"vm": {"update": bool}}).
        restricted_attrs: names a guest may not set or delete.
    """

    def __init__(self, merge_user_template=None, delete_user_template_attr=None,
                 read_user_template=None, permissions=None, restricted_attrs=RESTRICTED_ATTRS,
                 host="127.0.0.1", port=0):
        self.user_templates = InMemoryUserTemplates()
        self.merge_user_template = merge_user_template or self.user_templates.merge_user_template
        self.delete_user_template_attr = (delete_user_template_attr
                                          or self.user_templates.delete_user_template_attr)
        self.read_user_template = read_user_template or self.user_templates.read_user_template
        self.permissions = permissions if permissions is not None else DEFAULT_PERMISSIONS
        self.restricted_attrs = tuple(restricted_attrs)
        self.requests = []
        self._tokens = {}
        self._names = {}
        self._lock = threading.Lock()
        self._injected_failures = collections.deque()
        self._address = (host, port)
        self._server = None
        self._thread = None

    # --- registry -------------------------------------------------------------------
    def register_vm(self, vm_id, token=None, name=None):
        """Make vm_id known with this token (a random base64 one when None); returns it.

        Also creates an empty USER_TEMPLATE in the default in-memory sink.
        """
        if token is None:
            token = base64.b64encode(os.urandom(32)).decode("ascii")
        with self._lock:
            self._tokens[int(vm_id)] = token
            self._names[int(vm_id)] = name or "vm-%d" % int(vm_id)
        self.user_templates.add_vm(int(vm_id))
        return token

    def unregister_vm(self, vm_id):
        with self._lock:
            self._tokens.pop(int(vm_id), None)

    def token_for(self, vm_id):
        with self._lock:
            return self._tokens[int(vm_id)]

    def publisher_env(self, vm_id):
        """The three variables one_env exports, for running the publisher against us."""
        return {"ONEGATE_ENDPOINT": self.endpoint, "VMID": str(int(vm_id)),
                "TOKENTXT": self.token_for(vm_id)}

    def fail_next(self, count=1, status=503, message="Service Unavailable"):
        """Answer the next `count` requests with `status` (after nothing else is checked)."""
        with self._lock:
            for _ in range(count):
                self._injected_failures.append((status, message))

    # --- lifecycle ------------------------------------------------------------------
    @property
    def endpoint(self):
        """ONEGATE_ENDPOINT for clients: http://127.0.0.1:<port> (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("OneGateDouble is not started")
        host, port = self._server.server_address[:2]
        return "http://%s:%d" % (host, port)

    @property
    def port(self):
        return self._server.server_address[1]

    def start(self):
        handler = type("BoundOneGateHandler", (_OneGateHandler,), {"double": self})
        self._server = _ThreadingHTTPServer(self._address, handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="onegate-double", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # --- request handling (called from server threads) ------------------------------
    def _authenticate(self, token, vm_id_header):
        """-> vm_id, or None where the real OneGateCloudAuth returns nil (-> 401)."""
        if token is None or vm_id_header is None:
            return None
        try:
            vm_id = int(vm_id_header.strip())
        except ValueError:
            return None
        with self._lock:
            expected = self._tokens.get(vm_id)
        if expected is None or token.strip() != expected:
            return None
        return vm_id

    def _take_injected_failure(self):
        with self._lock:
            return self._injected_failures.popleft() if self._injected_failures else None

    def _record(self, *fields):
        with self._lock:
            self.requests.append(RecordedRequest(*fields))


@contextlib.contextmanager
def running_onegate_double(**kwargs):
    """Context manager for fixtures elsewhere: ``with running_onegate_double() as og:``."""
    double = OneGateDouble(**kwargs)
    double.start()
    try:
        yield double
    finally:
        double.stop()


class _OneGateHandler(BaseHTTPRequestHandler):
    double = None  # set on the bound subclass
    server_version = "OneGateDouble/1"

    def log_message(self, fmt, *args):  # keep pytest output clean
        pass

    def _reply(self, status, text, record):
        # Record before answering, so a client that got its answer always finds the record.
        self.double._record(*(record[:3] + (record[3], status) + record[4:]))
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _auth_headers(self):
        return self.headers.get("X-ONEGATE-TOKEN"), self.headers.get("X-ONEGATE-VMID")

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        token, vm_id_header = self._auth_headers()
        vm_id = self.double._authenticate(token, vm_id_header)
        record = (self.command, path, vm_id_header, vm_id is not None, None, None)
        if path != "/vm":
            return self._reply(404, "<h1>Not Found</h1>", record)
        failure = self.double._take_injected_failure()
        if failure:
            return self._reply(failure[0], failure[1], record)
        if not self.double.permissions.get("vm", {}).get("show"):
            return self._reply(403, "Action (show) on resource (vm) not supported", record)
        if vm_id is None:
            return self._reply(401, "Not authorized", record)
        try:
            user_template = self.double.read_user_template(vm_id)
        except VmNotFound as error:
            return self._reply(404, str(error), record)
        with self.double._lock:
            name = self.double._names.get(vm_id, "vm-%d" % vm_id)
        document = {"VM": {"NAME": name, "ID": str(vm_id), "STATE": "3", "LCM_STATE": "3",
                           "USER_TEMPLATE": user_template,
                           "TEMPLATE": {"NIC": [], "NIC_ALIAS": []}}}
        return self._reply(200, json.dumps(document), record)

    def do_PUT(self):
        split = urllib.parse.urlsplit(self.path)
        body = self._read_body()
        token, vm_id_header = self._auth_headers()
        vm_id = self.double._authenticate(token, vm_id_header)
        record = [self.command, split.path, vm_id_header, vm_id is not None, None, None]
        if split.path != "/vm":
            return self._reply(404, "<h1>Not Found</h1>", tuple(record))
        failure = self.double._take_injected_failure()
        if failure:
            return self._reply(failure[0], failure[1], tuple(record))
        if not self.double.permissions.get("vm", {}).get("update"):
            return self._reply(403, "Action (update) on resource (vm) not supported",
                               tuple(record))
        if vm_id is None:
            return self._reply(401, "Not authorized", tuple(record))

        # Sinatra's params: query string, plus the body when it is form-encoded.
        params = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            try:
                params.update(urllib.parse.parse_qsl(body.decode("utf-8"),
                                                     keep_blank_values=True))
            except UnicodeDecodeError:
                pass
        if "data" in params:
            text, record[4] = params["data"], "data"
        else:
            text, record[4] = body.decode("utf-8", "replace"), "raw"
        try:
            update_type = int(params.get("type", TYPE_MERGE))
        except ValueError:
            update_type = 0  # Ruby's "x".to_i: neither merge nor delete

        verb = "modified" if update_type == TYPE_MERGE else "deleted"
        for line in text.split("\n"):
            name = line.split("=")[0]
            if name and name.upper() in self.double.restricted_attrs:
                return self._reply(403, "Attribute (%s) cannot be %s" % (name, verb),
                                   tuple(record))
        try:
            if update_type == TYPE_MERGE:
                attrs = parse_template_attrs(text)
                record[5] = dict(attrs)
                self.double.merge_user_template(vm_id, attrs)
            else:
                name = text.strip()
                record[5] = [name]
                if not self.double.delete_user_template_attr(vm_id, name):
                    return self._reply(500, "attribute not found", tuple(record))
        except VmNotFound as error:
            return self._reply(404, str(error), tuple(record))
        except TemplateSyntaxError as error:
            return self._reply(500, "[one.vm.update] Error parsing template: %s" % error,
                               tuple(record))
        except Exception as error:  # an oned failure in the sink
            return self._reply(500, str(error), tuple(record))
        return self._reply(200, "", tuple(record))
