"""The HTTP side of cvem run: ``/metrics`` (Prometheus), ``/`` (the status page) and
``/api/status`` (the page's JSON). Read-only: every handler answers GET/HEAD only.

Bound to loopback by default (``[cvem] metrics_address`` / ``cvem run --metrics-address``);
the page holds VM names and reasons, so expose it beyond the front-end only behind the
operator's own proxy and authentication.
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, Tuple

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..errors import ConfigError
from .metrics import make_registry
from .page import PAGE_HTML
from .state import Monitor, MonitorState

LOG = logging.getLogger(__name__)


def parse_address(text: str) -> Tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port); a clear error otherwise."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"metrics address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9929")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def status_json(s: MonitorState) -> dict:
    view = s.view
    doc = {"role": s.role, "acting": s.acting, "oned_up": s.oned_up,
           "last_error": s.last_error, "period_s": s.period_s, "cycles": s.cycles,
           "hosts": [], "vms": [], "recent_actions": [],
           "reclaimed_history": [[t, b] for t, b in s.reclaimed_history],
           "at_s": view.at_s if view else None,
           "timings_s": view.timings_s if view else {},
           "migrations_in_flight": view.migrations_in_flight if view else 0}
    if view is None:
        return doc
    for h in view.hosts:
        doc["hosts"].append({"host": h.host_id, "name": h.name,
                             "physical_bytes": h.physical_bytes,
                             "max_mem_bytes": h.max_mem_bytes,
                             "allocated_bytes": h.allocated_bytes,
                             "reclaimed_bytes": h.reclaimed_bytes,
                             "lent_bytes": h.lent_bytes,
                             "held_back_bytes": h.held_back_bytes,
                             "needs_room_bytes": h.needs_room_bytes})
    for v in view.vms:
        last = s.last_action.get(v.vm_id)
        doc["vms"].append({"vm": v.vm_id, "name": v.name, "host": v.host_id,
                           "state": v.state, "nominal_bytes": v.nominal_bytes,
                           "current_bytes": v.current_bytes,
                           "guest_used_bytes": v.guest_used_bytes,
                           "target_bytes": v.target_bytes, "managed": v.managed,
                           "reason": v.reason, "report": v.report_state,
                           "last_action": f"{last.kind} ({last.reason})" if last else None})
    for a in s.recent:
        doc["recent_actions"].append({"at_s": a.at_s, "vm": a.vm_id, "host": a.host_id,
                                      "action": a.kind, "result": a.result,
                                      "reason": a.reason, "detail": a.detail})
    return doc


class _Handler(BaseHTTPRequestHandler):
    server_version = "cvem"
    monitor: Monitor = None   # set on the subclass made by MonitorServer
    registry = None

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.registry))
        elif path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", PAGE_HTML.encode())
        elif path == "/api/status":
            body = json.dumps(status_json(self.monitor.read())).encode()
            self._send(200, "application/json", body)
        else:
            self._send(404, "text/plain", b"not found\n")

    def do_HEAD(self):  # noqa: N802
        self.do_GET()

    def _send(self, code: int, content_type: str, body: bytes):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; script-src 'unsafe-inline' 'self'; "
                         "style-src 'unsafe-inline'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, fmt, *args):
        LOG.debug("http %s " + fmt, self.client_address[0], *args)


class MonitorServer:
    """Serve a :class:`Monitor` on ``address`` in a daemon thread."""

    def __init__(self, monitor: Monitor, address: str):
        host, port = parse_address(address)
        handler = type("Handler", (_Handler,), {"monitor": monitor,
                                                "registry": make_registry(monitor)})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise ConfigError(f"metrics address {address}: cannot listen: "
                              f"{error.strerror}") from None
        self.httpd.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "MonitorServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="cvem-http",
                                        daemon=True)
        self._thread.start()
        LOG.info("metrics on %s/metrics, status page on %s/", self.url, self.url)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
