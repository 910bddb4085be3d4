"""A faithful oned 7.4 double: a real XML-RPC server on 127.0.0.1 for the calls cvem makes.

    from tests.doubles.oned import OnedDouble

    with OnedDouble() as oned:                       # ephemeral port, threaded
        h = oned.add_host("kvm-1", total_mem_kib=16 * GIB)
        vm = oned.add_vm("web", host_id=h, memory_mib=4096, memory_max_mib=4096)
        oned.set_guest(vm, used_kib=1_000_000)       # what the in-guest publisher would PUT
        server = pyone.OneServer(oned.endpoint, oned.session)
        server.vm.resize(vm, "MEMORY=2048", False)
        oned.wait_until(lambda: oned.lcm_state(vm) == 3)   # HOTPLUG_RESIZE -> RUNNING

Semantics follow the recordings of a real oned 7.4.0 in
``tests/fixtures/opennebula/real-7.4/`` (``calls.jsonl``): reply shapes (``[True, body, 0]``;
failures ``[False, "[one.<method>] <message>", code, obj_id, -1]`` as recorded — 5 items),
error texts and codes, the fit test (``MAX_MEM - MEM_USAGE``), live resize through LCM 66
HOTPLUG_RESIZE for ``resize_settle_s``, a history record per resize, asynchronous migration
(LCM 4 MIGRATE for ``migrate_settle_s``), merge vs replace updates, ``RESERVED_MEM`` feeding
``MAX_MEM`` at once, paging of the pools (newest ID first), and pool bodies without
MONITORING (``vmpool.monitoring(-2, 0)`` has it). The authentication failure text is
oned's ``Request::authenticate_error()``.

Driving it: ``add_host``/``add_vm``, ``set_guest`` (USER_TEMPLATE keys like the OneGate
publisher), ``set_probe`` (MONITORING keys like the IM probe), ``merge_user_template`` (the
OneGate double's sink), ``apply_demand`` (per-VM demand arrays from a workload),
``set_lcm_state``, ``advance`` (move its clock), ``fail_next``, ``set_password``.
Deliberate simplifications: one system datastore (0); no quotas, ACLs, clusters' own
templates, NUMA or PCI; ``vm.info`` returns every history record.
"""

import collections
import re
import threading
import time
from socketserver import ThreadingMixIn
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

KIB_PER_MIB = 1024
RAFT_SOLO, RAFT_CANDIDATE, RAFT_FOLLOWER, RAFT_LEADER = 0, 1, 2, 3
GIB = 1024 * 1024  # KiB

AUTHENTICATION, AUTHORIZATION, NO_EXISTS, ACTION, XML_RPC_API, INTERNAL = (
    0x100, 0x200, 0x400, 0x800, 0x1000, 0x2000)

VM_STATES = {0: "INIT", 1: "PENDING", 2: "HOLD", 3: "ACTIVE", 4: "STOPPED", 5: "SUSPENDED",
             6: "DONE", 8: "POWEROFF", 9: "UNDEPLOYED", 10: "CLONING", 11: "CLONING_FAILURE"}
LCM_STATES = {0: "LCM_INIT", 1: "PROLOG", 2: "BOOT", 3: "RUNNING", 4: "MIGRATE",
              5: "SAVE_STOP", 6: "SAVE_SUSPEND", 7: "SAVE_MIGRATE", 8: "PROLOG_MIGRATE",
              9: "PROLOG_RESUME", 10: "EPILOG_STOP", 11: "EPILOG", 12: "SHUTDOWN",
              15: "CLEANUP_RESUBMIT", 16: "UNKNOWN", 17: "HOTPLUG", 18: "SHUTDOWN_POWEROFF",
              19: "BOOT_UNKNOWN", 20: "BOOT_POWEROFF", 66: "HOTPLUG_RESIZE"}
ACTIVE, POWEROFF, SUSPENDED, HOLD, DONE = 3, 8, 5, 2, 6
RUNNING, MIGRATE, UNKNOWN, HOTPLUG_RESIZE = 3, 4, 16, 66
ACTION_RESIZE, ACTION_LIVE_MIGRATE, ACTION_MIGRATE = 35, 2, 1
HOST_MONITORED = 2

DEFAULT_LIVE_RESIZE_VM_MADS = ("kvm", "cloudvamp", "dummylive")

PERMISSIONS_XML = ("<PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A>"
                   "<GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0"
                   "</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS>")

# Keys the short vmpool.info body keeps (oned's VirtualMachine::to_xml_short).
SHORT_TEMPLATE_KEYS = ("CPU", "MEMORY", "VCPU", "DISK", "NIC", "GRAPHICS")


def cdata(value):
    text = str(value)
    if "]]>" in text:
        text = text.replace("]]>", "]]]]><![CDATA[>")
    return "<![CDATA[%s]]>" % text


def render_attrs(attrs):
    """OpenNebula template attributes as XML, sorted by name as oned stores them.

    A value is a string (single attribute), a dict (vector attribute) or a list of those
    (repeated attribute, e.g. several DISKs)."""
    out = []
    for name in sorted(attrs):
        value = attrs[name]
        for item in (value if isinstance(value, list) else [value]):
            if isinstance(item, dict):
                out.append("<%s>%s</%s>" % (name, render_attrs(item), name))
            else:
                out.append("<%s>%s</%s>" % (name, cdata(item), name))
    return "".join(out)


class OneError(Exception):
    """An oned failure reply: message (without the method prefix), code, object id."""

    def __init__(self, message, code, obj_id=-1):
        super().__init__(message)
        self.message, self.code, self.obj_id = message, code, obj_id


# --------------------------------------------------------------------- template parsing
_ATTR_LINE = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*(.*?)\s*$')


def parse_template(text):
    """oned template text ('K=V' lines, K="V", or <TEMPLATE> XML) -> ordered dict.

    Raises OneError with oned's parse-error wording for the recorded malformed cases."""
    text = text.strip()
    attrs = collections.OrderedDict()
    if text.startswith("<"):
        from xml.etree import ElementTree
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError as error:
            raise OneError("Parse error: %s" % error, ACTION)
        for child in root:
            attrs[child.tag.upper()] = (child.text or "").strip()
        return attrs
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _ATTR_LINE.match(line)
        if not match:
            raise OneError("Parse error: syntax error, unexpected $end, expecting EQUAL at "
                           "line 1092628512, columns %d:%d" % (len(line) - 5, len(line) + 1),
                           ACTION)
        name, value = match.group(1).upper(), match.group(2)
        if value.startswith("["):
            if not value.endswith("]"):
                raise OneError("Parse error: syntax error, unexpected $end, expecting EQUAL "
                               "at line 1092628512, columns %d:%d"
                               % (len(line) - 5, len(line) + 1), ACTION)
            attrs[name] = value
            continue
        if value == "":
            raise OneError("Parse error: syntax error, unexpected $end, expecting OBRACKET or "
                           "CCDATA or STRING at line 1092628512, columns %d:%d"
                           % (len(line), len(line) + 1), ACTION)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"')
        if name.startswith("XML"):
            name = "ONE_" + name
        attrs[name] = value
    return attrs


# --------------------------------------------------------------------------- objects
class Host(object):
    def __init__(self, host_id, name, im_mad, vm_mad, total_mem_kib, cluster_id, template):
        self.id, self.name = host_id, name
        self.im_mad, self.vm_mad = im_mad, vm_mad
        self.total_mem_kib = int(total_mem_kib)
        self.cluster_id = cluster_id
        self.state = HOST_MONITORED
        self.template = collections.OrderedDict(template)
        self.monitoring = {}

    def reserved_kib(self):
        raw = str(self.template.get("RESERVED_MEM", "")).strip()
        if not raw:
            return 0
        try:
            if raw.endswith("%"):
                return int(self.total_mem_kib * float(raw[:-1]) / 100.0)
            return int(raw)
        except ValueError:
            return 0  # oned ignores an unparsable value: MAX_MEM = TOTAL_MEM

    def max_mem_kib(self):
        return self.total_mem_kib - self.reserved_kib()


class Vm(object):
    def __init__(self, vm_id, name, uid, gid, uname, gname, template, user_template):
        self.id, self.name = vm_id, name
        self.uid, self.gid, self.uname, self.gname = uid, gid, uname, gname
        self.state, self.lcm = ACTIVE, RUNNING
        self.prev_state, self.prev_lcm = ACTIVE, RUNNING
        self.stime = 0
        self.last_poll = 0
        self.template = collections.OrderedDict(template)
        self.user_template = collections.OrderedDict(user_template)
        self.monitoring = None     # last record (dict) or None
        self.history = []          # dicts, oldest first
        self.host_id = None
        self.migrate_to = None
        self.pending = None        # (due_monotonic_s, kind)
        self.deploy_id = ""

    @property
    def memory_kib(self):
        return int(self.template["MEMORY"]) * KIB_PER_MIB

    def allocated_on(self):
        """Hosts whose MEM_USAGE counts this VM."""
        if self.state in (ACTIVE, POWEROFF, SUSPENDED) and self.host_id is not None:
            hosts = [self.host_id]
            if self.migrate_to is not None:
                hosts.append(self.migrate_to)
            return hosts
        return []


# ------------------------------------------------------------------------------ server
class _Server(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2", "/")

    def log_message(self, fmt, *args):  # keep test output clean
        pass


class OnedDouble(object):
    """The oned double. Context manager, or start()/stop() (restartable on the same port)."""

    def __init__(self, users=None, resize_settle_s=0.05, migrate_settle_s=0.1,
                 live_resize_vm_mads=DEFAULT_LIVE_RESIZE_VM_MADS, host="127.0.0.1", port=0):
        self.users = dict(users or {"oneadmin": "opennebula"})
        self.resize_settle_s = resize_settle_s
        self.migrate_settle_s = migrate_settle_s
        self.live_resize_vm_mads = set(live_resize_vm_mads)
        self.hosts = collections.OrderedDict()
        self.vms = collections.OrderedDict()
        self.calls = []               # (method, params without session, ok, code)
        self.record_calls = True
        self._lock = threading.RLock()
        self._offset_s = 0.0
        self._next_vm_id = 0
        self._next_host_id = 0
        self._pending = set()
        self._injected = collections.defaultdict(collections.deque)
        self._address = (host, port)
        self._server = None
        self._thread = None
        self._seq = collections.Counter()
        # HA and OneDRS (shapes recorded from a real oned 7.4, see the methods below)
        self.raft_state = RAFT_SOLO
        self.raft_server_id = -1
        self.documents = collections.OrderedDict()   # id -> dict(name, type, uid, template)
        self.drs_plans = {}                           # cluster id -> (plan state, [(vm, st)])

    # ------------------------------------------------------------------ lifecycle
    @property
    def session(self):
        user, password = next(iter(self.users.items()))
        return "%s:%s" % (user, password)

    @property
    def endpoint(self):
        return "http://%s:%d/RPC2" % self._address

    @property
    def port(self):
        return self._address[1]

    def start(self):
        self._server = _Server(self._address, requestHandler=_Handler, logRequests=False,
                               allow_none=False)
        self._server.register_instance(self)
        self._address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        name="oned-double", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ----------------------------------------------------------------------- clock
    def monotonic(self):
        return time.monotonic() + self._offset_s

    def epoch(self):
        return int(time.time() + self._offset_s)

    def advance(self, seconds):
        """Move the double's clock forward: pending resizes/migrations settle on schedule."""
        with self._lock:
            self._offset_s += seconds
            self._settle()

    def wait_until(self, predicate, timeout_s=5.0, poll_s=0.01):
        """Poll ``predicate`` (settling transitions) until true; AssertionError on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                self._settle()
                if predicate():
                    return
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached within %.1f s" % timeout_s)
            time.sleep(poll_s)

    # -------------------------------------------------------------- driving API
    def add_host(self, name=None, total_mem_kib=16 * GIB, vm_mad="kvm", im_mad="kvm",
                 cluster_id=0, reserved_mem=None, template=None):
        with self._lock:
            host_id = self._next_host_id
            self._next_host_id += 1
            name = name or "host-%d" % host_id
            tmpl = {"ARCH": "x86_64", "CPUSPEED": "3200", "HOSTNAME": name,
                    "HYPERVISOR": "kvm", "IM_MAD": im_mad, "TOTALCPU": "800",
                    "TOTALMEMORY": str(int(total_mem_kib)), "VM_MAD": vm_mad}
            if reserved_mem is not None:
                tmpl["RESERVED_MEM"] = str(reserved_mem)
            tmpl.update(template or {})
            host = Host(host_id, name, im_mad, vm_mad, total_mem_kib, cluster_id, tmpl)
            host.monitoring = {"FREE_MEMORY": int(total_mem_kib * 0.9),
                               "USED_MEMORY": int(total_mem_kib * 0.1)}
            self.hosts[host_id] = host
            return host_id

    def add_vm(self, name=None, host_id=None, memory_mib=1024, memory_max_mib=None,
               resize_mode=None, state=ACTIVE, lcm_state=RUNNING, uid=0, gid=0,
               uname="oneadmin", gname="oneadmin", user_template=None, template=None,
               realistic=False):
        """Create a VM, deployed on ``host_id`` (RUNNING by default); returns its ID.

        ``realistic`` adds CONTEXT, DISKs, NIC, GRAPHICS, OS... so the XML has the size of a
        real KVM VM (about 5 KB in ``infoextended``)."""
        with self._lock:
            vm_id = self._next_vm_id
            self._next_vm_id += 1
            name = name or "vm-%d" % vm_id
            tmpl = {"AUTOMATIC_REQUIREMENTS": "!(PIN_POLICY = PINNED)", "CPU": "1",
                    "MEMORY": str(int(memory_mib)), "TEMPLATE_ID": "0",
                    "TM_MAD_SYSTEM": "ssh", "VCPU": "1", "VMID": str(vm_id),
                    "OS": {"MACHINE": "q35", "UUID": "00000000-0000-4000-8000-%012d" % vm_id}}
            if memory_max_mib is not None:
                tmpl["MEMORY_MAX"] = str(int(memory_max_mib))
            if resize_mode is not None:
                tmpl["MEMORY_RESIZE_MODE"] = resize_mode
            if realistic:
                tmpl.update(_realistic_template(vm_id, name))
            user = dict(user_template or {})
            for key, value in (template or {}).items():
                # A real oned 7.4 moves the custom attributes of a VM template (CLOUDVAMP=...)
                # into USER_TEMPLATE at allocate, where OneGate can overwrite them.
                (user if key.startswith("CLOUDVAMP") else tmpl)[key] = value
            vm = Vm(vm_id, name, uid, gid, uname, gname, tmpl, user)
            vm.stime = vm.last_poll = self.epoch()
            vm.state, vm.lcm = state, lcm_state
            vm.prev_state, vm.prev_lcm = state, lcm_state
            if host_id is not None:
                host = self.hosts[host_id]
                vm.host_id = host_id
                vm.deploy_id = "00000000-0000-4000-9000-%012d" % vm_id
                vm.history.append(self._history(vm, host, self.epoch()))
                vm.monitoring = {"CPU": "1", "ID": str(vm_id), "MEMORY": str(vm.memory_kib),
                                 "TIMESTAMP": str(self.epoch())}
            self.vms[vm_id] = vm
            return vm_id

    def _history(self, vm, host, now):
        return collections.OrderedDict([
            ("OID", vm.id), ("SEQ", len(vm.history)), ("HOSTNAME", host.name),
            ("HID", host.id), ("CID", host.cluster_id), ("STIME", now), ("ETIME", 0),
            ("VM_MAD", host.vm_mad), ("TM_MAD", "ssh"), ("DS_ID", 0), ("PLAN_ID", -1),
            ("ACTION_ID", -1), ("PSTIME", now), ("PETIME", now), ("RSTIME", now),
            ("RETIME", 0), ("ESTIME", 0), ("EETIME", 0), ("ACTION", 0), ("UID", -1),
            ("GID", -1), ("REQUEST_ID", -1)])

    def set_guest(self, vm_id, used_kib, total_kib=None, swap_used_kib=0, swap_in_kib_s=0.0,
                  swap_out_kib_s=0.0, psi_some=None, psi_full=None, seq=None, time_s=None,
                  extra=None):
        """Publish guest figures into USER_TEMPLATE the way OneGate merges them."""
        with self._lock:
            vm = self.vms[vm_id]
            total = int(total_kib if total_kib is not None else vm.memory_kib)
            used = int(used_kib)
            self._seq[vm_id] += 1
            attrs = {
                "CLOUDVAMP_MEM_TOTAL_KIB": str(total),
                "CLOUDVAMP_MEM_AVAILABLE_KIB": str(max(total - used, 0)),
                "CLOUDVAMP_MEM_USED_KIB": str(used),
                "CLOUDVAMP_SWAP_USED_KIB": str(int(swap_used_kib)),
                "CLOUDVAMP_SWAP_IN_KIB_S": "%.1f" % swap_in_kib_s,
                "CLOUDVAMP_SWAP_OUT_KIB_S": "%.1f" % swap_out_kib_s,
                "CLOUDVAMP_SEQ": str(seq if seq is not None else self._seq[vm_id]),
                "CLOUDVAMP_TIME": str(int(time_s if time_s is not None else self.epoch())),
            }
            if psi_some is not None:
                attrs["CLOUDVAMP_PSI_SOME_AVG10"] = "%.2f" % psi_some
            if psi_full is not None:
                attrs["CLOUDVAMP_PSI_FULL_AVG10"] = "%.2f" % psi_full
            attrs.update(extra or {})
            vm.user_template.update(attrs)

    def apply_demand(self, vm_ids, demand_kib):
        """Feed one step of a workload: each guest's used memory is its demand, capped by
        its current allocation; what does not fit shows up as swap and swap-in activity."""
        with self._lock:
            for vm_id, demand in zip(vm_ids, demand_kib):
                vm = self.vms[int(vm_id)]
                total = vm.memory_kib
                short = max(int(demand) - total, 0)
                self.set_guest(int(vm_id), used_kib=min(int(demand), total), total_kib=total,
                               swap_used_kib=short, swap_in_kib_s=short / 10.0 if short else 0.0,
                               psi_full=5.0 if short else 0.0, psi_some=8.0 if short else 0.0)

    def set_probe(self, vm_id, **keys):
        """Merge keys (e.g. CLOUDVAMP_USABLE_KIB=...) into the VM's MONITORING record."""
        with self._lock:
            vm = self.vms[vm_id]
            record = dict(vm.monitoring or {"ID": str(vm_id)})
            record.update({k: str(v) for k, v in keys.items()})
            record["TIMESTAMP"] = str(self.epoch())
            vm.monitoring = record

    def merge_user_template(self, vm_id, attrs):
        """Sink for the OneGate double (``OneGateDouble(merge_user_template=...)``)."""
        with self._lock:
            vm = self.vms.get(int(vm_id))
            if vm is None or vm.state == DONE:
                from tests.doubles.onegate import VmNotFound
                raise VmNotFound("[one.vm.info] Error getting virtual machine [%d]." % vm_id)
            vm.user_template.update(attrs)

    def user_template(self, vm_id):
        with self._lock:
            return dict(self.vms[int(vm_id)].user_template)

    def delete_user_template_attr(self, vm_id, name):
        with self._lock:
            return self.vms[int(vm_id)].user_template.pop(name, None) is not None

    def set_lcm_state(self, vm_id, lcm_state, state=ACTIVE):
        with self._lock:
            vm = self.vms[vm_id]
            vm.prev_state, vm.prev_lcm = vm.state, vm.lcm
            vm.state, vm.lcm = state, lcm_state

    def terminate(self, vm_id):
        with self._lock:
            vm = self.vms[vm_id]
            vm.state, vm.lcm = DONE, 0

    def lcm_state(self, vm_id):
        with self._lock:
            self._settle()
            return self.vms[vm_id].lcm

    def memory_mib(self, vm_id):
        with self._lock:
            return int(self.vms[vm_id].template["MEMORY"])

    def host_of(self, vm_id):
        with self._lock:
            self._settle()
            return self.vms[vm_id].host_id

    def set_password(self, user, password):
        with self._lock:
            self.users[user] = password

    def fail_next(self, method, message, code, count=1):
        """The next ``count`` calls of ``method`` fail with this message (without prefix)."""
        with self._lock:
            for _ in range(count):
                self._injected[method].append((message, code))

    def calls_of(self, method):
        with self._lock:
            return [c for c in self.calls if c[0] == method]

    # ------------------------------------------------------------------ XML-RPC
    def _dispatch(self, method, params):
        handler = getattr(self, "_rpc_" + method.replace(".", "_"), None)
        if handler is None or not method.startswith("one."):
            raise Exception('method "%s" is not supported' % method)
        session, args = (params[0] if params else ""), tuple(params[1:])
        with self._lock:
            self._settle()
            try:
                if not self._authenticated(session):
                    raise OneError("User couldn't be authenticated, aborting call.",
                                   AUTHENTICATION)
                if self._injected[method]:
                    message, code = self._injected[method].popleft()
                    raise OneError(message, code)
                body = handler(*args)
                reply = [True, body, 0]
            except OneError as error:
                reply = [False, "[%s] %s" % (method, error.message), error.code,
                         error.obj_id, -1]
            if self.record_calls:
                self.calls.append((method, args, reply[0], reply[2]))
            return reply

    def _authenticated(self, session):
        user, _, password = str(session).partition(":")
        return user in self.users and self.users[user] == password

    def _settle(self):
        if not self._pending:
            return
        now = self.monotonic()
        for vm_id in list(self._pending):
            vm = self.vms[vm_id]
            due, kind = vm.pending
            if due > now:
                continue
            vm.pending = None
            self._pending.discard(vm_id)
            epoch = self.epoch()
            if kind == "resize":
                vm.lcm = RUNNING
            elif kind == "migrate":
                old = vm.history[-1]
                old["ETIME"] = old["RETIME"] = epoch
                old["ACTION"] = ACTION_LIVE_MIGRATE
                vm.host_id, vm.migrate_to = vm.migrate_to, None
                vm.history.append(self._history(vm, self.hosts[vm.host_id], epoch))
                vm.lcm = RUNNING

    def _vm(self, vm_id):
        vm = self.vms.get(int(vm_id))
        if vm is None or vm.state == DONE:
            raise OneError("Error getting virtual machine [%d]." % vm_id, NO_EXISTS, vm_id)
        return vm

    def _host(self, host_id):
        host = self.hosts.get(int(host_id))
        if host is None:
            raise OneError("Error getting host [%d]." % host_id, NO_EXISTS, host_id)
        return host

    def _mem_usage(self):
        usage = collections.Counter()
        running = collections.Counter()
        for vm in self.vms.values():
            for h in vm.allocated_on():
                usage[h] += vm.memory_kib
                running[h] += 1
        return usage, running

    # ------------------------------------------------------------ HA, OneDRS, docs
    def set_raft_state(self, state, server_id=0):
        """0 SOLO, 1 CANDIDATE, 2 FOLLOWER, 3 LEADER (include/RaftManager.h)."""
        with self._lock:
            self.raft_state, self.raft_server_id = state, server_id if state else -1

    def set_drs_plan(self, cluster_id, actions, state=1):
        """A OneDRS plan on the cluster: ``actions`` [(vm_id, action_state)], PlanState
        -1 NONE, 0 READY, 1 APPLYING, 2 DONE, 3 ERROR, 4 TIMEOUT (include/Plan.h)."""
        with self._lock:
            self.drs_plans[int(cluster_id)] = (state, list(actions))

    def _rpc_one_zone_raftstatus(self):
        # A standalone 7.4 oned answers exactly this (SERVER_ID -1, STATE 0 = SOLO).
        return ("<RAFT><SERVER_ID>%d</SERVER_ID><STATE>%d</STATE><TERM>%d</TERM>"
                "<VOTEDFOR>-1</VOTEDFOR><COMMIT>0</COMMIT><LOG_INDEX>-1</LOG_INDEX>"
                "<LOG_TERM>-1</LOG_TERM><FEDLOG_INDEX>-1</FEDLOG_INDEX></RAFT>"
                % (self.raft_server_id, self.raft_state, 1 if self.raft_state else 0))

    def _rpc_one_cluster_info(self, cluster_id, decrypt=False):
        cluster_id = int(cluster_id)
        hosts = [h.id for h in self.hosts.values() if h.cluster_id == cluster_id]
        if not hosts and cluster_id != 0:
            raise OneError("Error getting cluster [%d]." % cluster_id, NO_EXISTS, cluster_id)
        plan = ""
        if cluster_id in self.drs_plans:   # Cluster::load_plan: only when not NONE
            state, actions = self.drs_plans[cluster_id]
            if state != -1:
                plan = "<PLAN><ID>%d</ID><STATE>%d</STATE>%s</PLAN>" % (cluster_id, state, "".join(
                    "<ACTION><ID>%d</ID><VM_ID>%d</VM_ID><STATE>%d</STATE><OPERATION>"
                    "migrate</OPERATION><HOST_ID>0</HOST_ID><DS_ID>-1</DS_ID><TIMESTAMP>0"
                    "</TIMESTAMP></ACTION>" % (i, vm, st) for i, (vm, st) in enumerate(actions)))
        return ("<CLUSTER><ID>%d</ID><NAME>default</NAME><HOSTS>%s</HOSTS><DATASTORES>"
                "</DATASTORES><VNETS></VNETS><TEMPLATE><RESERVED_CPU><![CDATA[]]>"
                "</RESERVED_CPU><RESERVED_MEM><![CDATA[]]></RESERVED_MEM></TEMPLATE>%s"
                "</CLUSTER>" % (cluster_id, "".join("<ID>%d</ID>" % h for h in hosts), plan))

    def _rpc_one_documentpool_info(self, filter_flag=-2, start=-1, end=-1, doc_type=-1):
        return "<DOCUMENT_POOL>%s</DOCUMENT_POOL>" % "".join(
            self._document_xml(i, d) for i, d in self.documents.items()
            if d["type"] == int(doc_type))

    def _rpc_one_document_info(self, doc_id, decrypt=False):
        if int(doc_id) not in self.documents:
            raise OneError("Error getting document [%d]." % doc_id, NO_EXISTS, doc_id)
        return self._document_xml(int(doc_id), self.documents[int(doc_id)])

    def _rpc_one_document_allocate(self, tmpl, doc_type):
        attrs = parse_template(tmpl)
        doc_id = max(self.documents, default=-1) + 1
        name = attrs.pop("NAME", "") or "Unnamed"
        self.documents[doc_id] = {"name": name, "type": int(doc_type), "template": attrs}
        return doc_id

    def _rpc_one_document_update(self, doc_id, tmpl, update_type=0):
        if int(doc_id) not in self.documents:
            raise OneError("Error getting document [%d]." % doc_id, NO_EXISTS, doc_id)
        attrs = parse_template(tmpl)
        doc = self.documents[int(doc_id)]
        if update_type == 0:
            doc["template"] = collections.OrderedDict(attrs)
        else:
            doc["template"].update(attrs)
        return int(doc_id)

    def _document_xml(self, doc_id, doc):
        return ("<DOCUMENT><ID>%d</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>"
                "oneadmin</GNAME><NAME>%s</NAME><TYPE>%d</TYPE>%s<TEMPLATE>%s</TEMPLATE>"
                "</DOCUMENT>" % (doc_id, _esc(doc["name"]), doc["type"], PERMISSIONS_XML,
                                 "".join("<%s>%s</%s>" % (k, cdata(v), k)
                                         for k, v in doc["template"].items())))

    # ---------------------------------------------------------------- VM calls
    def _rpc_one_vm_info(self, vm_id, decrypt=False):
        return self.vm_xml(self._vm(vm_id), full=True)

    def _rpc_one_vm_resize(self, vm_id, tmpl, enforce=True):
        vm = self._vm(vm_id)
        attrs = parse_template(tmpl)
        memory_mib = None
        if "MEMORY" in attrs:
            try:
                memory_mib = int(attrs["MEMORY"])
            except ValueError:
                memory_mib = -1
            if memory_mib < 0:
                raise OneError("MEMORY must be a positive integer value.", INTERNAL)
        if vm.state == ACTIVE:
            if vm.lcm != RUNNING:
                raise OneError("Cannot resize a VM in state %s"
                               % LCM_STATES.get(vm.lcm, vm.lcm), ACTION)
            host = self.hosts[vm.host_id]
            if host.vm_mad not in self.live_resize_vm_mads:
                raise OneError("Hotplug resize not supported by driver %s" % host.vm_mad,
                               ACTION)
        elif vm.state not in (POWEROFF, 0, 1, HOLD, 9, 10, 11):
            raise OneError("Cannot resize a VM in state %s" % VM_STATES[vm.state], ACTION)
        old_kib = vm.memory_kib
        new_kib = old_kib if not memory_mib else memory_mib * KIB_PER_MIB
        if enforce and vm.host_id is not None and vm.state in (ACTIVE, POWEROFF) \
                and new_kib > old_kib:
            usage, _ = self._mem_usage()
            host = self.hosts[vm.host_id]
            free_kib = host.max_mem_kib() - usage[host.id] + old_kib
            if new_kib > free_kib:
                raise OneError("Not enough memory: %d/%d" % (new_kib, free_kib), ACTION)
        for key in ("CPU", "VCPU"):
            if key in attrs and attrs[key] not in ("0", ""):
                vm.template[key] = attrs[key]
        if memory_mib:
            vm.template["MEMORY"] = str(memory_mib)
        if vm.state == ACTIVE:
            epoch = self.epoch()
            old = vm.history[-1]
            old["ETIME"] = old["RETIME"] = epoch
            old["ACTION"] = ACTION_RESIZE
            vm.history.append(self._history(vm, self.hosts[vm.host_id], epoch))
            vm.lcm = HOTPLUG_RESIZE
            vm.pending = (self.monotonic() + self.resize_settle_s, "resize")
            self._pending.add(vm.id)
        return vm.id

    def _rpc_one_vm_update(self, vm_id, tmpl, update_type=0):
        if update_type not in (0, 1):
            raise OneError("Wrong update type", XML_RPC_API)
        vm = self._vm(vm_id)
        attrs = parse_template(tmpl)
        if update_type == 0:
            vm.user_template = collections.OrderedDict(attrs)
        else:
            vm.user_template.update(attrs)
        return vm.id

    def _rpc_one_vm_migrate(self, vm_id, host_id, live=False, enforce=False, ds_id=-1,
                            migration_type=0):
        vm = self._vm(vm_id)
        host = self._host(host_id)
        if ds_id not in (-1, 0):
            raise OneError("Error getting datastore [%d]." % ds_id, NO_EXISTS, ds_id)
        if vm.state == ACTIVE and vm.lcm not in (RUNNING, UNKNOWN):
            raise OneError("Migrate action is not available for state %s"
                           % LCM_STATES.get(vm.lcm, vm.lcm), ACTION)
        if vm.state not in (ACTIVE, POWEROFF, SUSPENDED):
            raise OneError("Migrate action is not available for state %s"
                           % VM_STATES[vm.state], ACTION)
        if vm.host_id == host.id:
            raise OneError("VM is already running on host [%d] and datastore [0]" % host.id,
                           ACTION)
        if enforce:
            usage, _ = self._mem_usage()
            free_kib = host.max_mem_kib() - usage[host.id]
            if vm.memory_kib > free_kib:
                raise OneError("virtual machine [%d] does not fit in host [%d]. Not enough "
                               "memory: %d/%d" % (vm.id, host.id, vm.memory_kib, free_kib),
                               ACTION)
        vm.migrate_to = host.id
        vm.lcm = MIGRATE
        vm.pending = (self.monotonic() + self.migrate_settle_s, "migrate")
        self._pending.add(vm.id)
        return vm.id

    def _rpc_one_vmpool_infoextended(self, filter_flag=-2, start=-1, end=-1, state=-1,
                                     kv_filter=""):
        return self.vm_pool_xml(filter_flag, start, end, state, full=True)

    def _rpc_one_vmpool_info(self, filter_flag=-2, start=-1, end=-1, state=-1, kv_filter=""):
        return self.vm_pool_xml(filter_flag, start, end, state, full=False)

    def _rpc_one_vmpool_monitoring(self, filter_flag=-2, seconds=-1):
        parts = ["<MONITORING_DATA>"]
        for vm in sorted(self._select(filter_flag, -1), key=lambda v: v.id):
            if vm.monitoring:
                parts.append(monitoring_xml(vm.monitoring))
        parts.append("</MONITORING_DATA>")
        return "".join(parts)

    # -------------------------------------------------------------- host calls
    def _rpc_one_host_info(self, host_id, decrypt=False):
        usage, running = self._mem_usage()
        return self.host_xml(self._host(host_id), usage, running, full=True)

    def _rpc_one_hostpool_info(self):
        usage, running = self._mem_usage()
        return "<HOST_POOL>%s</HOST_POOL>" % "".join(
            self.host_xml(h, usage, running, full=False) for h in self.hosts.values())

    def _rpc_one_host_update(self, host_id, tmpl, update_type=0):
        if update_type not in (0, 1):
            raise OneError("Wrong update type", XML_RPC_API)
        host = self._host(host_id)
        attrs = parse_template(tmpl)
        if update_type == 0:
            host.template = collections.OrderedDict(attrs)
        else:
            host.template.update(attrs)
        return host.id

    # --------------------------------------------------------------------- XML
    def _select(self, filter_flag, state):
        session_uid = 0
        out = []
        for vm in self.vms.values():
            if state == -1 and vm.state == DONE:
                continue
            if state >= 0 and vm.state != state:
                continue
            if filter_flag >= 0 and vm.uid != filter_flag:
                continue
            if filter_flag == -3 and vm.uid != session_uid:
                continue
            out.append(vm)
        return out

    def vm_pool_xml(self, filter_flag=-2, start=-1, end=-1, state=-1, full=True):
        vms = sorted(self._select(filter_flag, state), key=lambda v: -v.id)
        if end < -1:                       # pagination: start = offset, -end = page size
            vms = vms[max(start, 0):max(start, 0) - end]
        elif start >= 0 and end >= 0:      # an ID range
            vms = [v for v in vms if start <= v.id <= end]
        render = (lambda v: self.vm_xml(v, pool=True)) if full else self.vm_short_xml
        return "<VM_POOL>%s</VM_POOL>" % "".join(render(v) for v in vms)

    def vm_short_xml(self, vm):
        """The ``one.vmpool.info`` body (VirtualMachine::to_xml_short)."""
        template = []
        for key in SHORT_TEMPLATE_KEYS:
            value = vm.template.get(key)
            for item in (value if isinstance(value, list) else [value]):
                if isinstance(item, dict):
                    template.append("<%s>%s</%s>" % (key, render_attrs(item), key))
                elif item is not None:
                    template.append("<%s>%s</%s>" % (key, _esc(item), key))
        user = {k: v for k, v in vm.user_template.items()
                if k in ("LABELS", "ERROR") or k.startswith("SCHED_")}
        hist = ""
        if vm.history:
            rec = vm.history[-1]
            hist = ("<HISTORY><OID>%d</OID><SEQ>%d</SEQ><HOSTNAME>%s</HOSTNAME><HID>%d</HID>"
                    "<CID>%d</CID><DS_ID>0</DS_ID><VM_MAD>%s</VM_MAD><TM_MAD>%s</TM_MAD>"
                    "<ACTION>%s</ACTION></HISTORY>" % (
                        rec["OID"], rec["SEQ"], cdata(rec["HOSTNAME"]), rec["HID"],
                        rec["CID"], cdata(rec["VM_MAD"]), cdata(rec["TM_MAD"]),
                        cdata(rec["ACTION"])))
        return (
            "<VM><ID>%d</ID><UID>%d</UID><GID>%d</GID><UNAME>%s</UNAME><GNAME>%s</GNAME>"
            "<NAME>%s</NAME><LAST_POLL>%d</LAST_POLL><STATE>%d</STATE><LCM_STATE>%d"
            "</LCM_STATE><RESCHED>0</RESCHED><STIME>%d</STIME><ETIME>0</ETIME><DEPLOY_ID>%s"
            "</DEPLOY_ID><TEMPLATE>%s</TEMPLATE><MONITORING/><USER_TEMPLATE>%s</USER_TEMPLATE>"
            "%s</VM>" % (
                vm.id, vm.uid, vm.gid, _esc(vm.uname), _esc(vm.gname), _esc(vm.name),
                vm.last_poll, vm.state, vm.lcm, vm.stime, _esc(vm.deploy_id),
                "".join(template), render_attrs(user),
                "<HISTORY_RECORDS>%s</HISTORY_RECORDS>" % hist if hist
                else "<HISTORY_RECORDS/>"))

    def vm_xml(self, vm, full=True, pool=False):
        """The full ``<VM>`` body: ``one.vm.info``, or ``infoextended`` (``pool``: no
        MONITORING, last history record only)."""
        template, user = vm.template, vm.user_template
        monitoring = ""
        if vm.monitoring and not pool:
            monitoring = "".join("<%s>%s</%s>" % (k, cdata(v), k)
                                 for k, v in sorted(vm.monitoring.items()))
        history = vm.history[-1:] if pool else vm.history
        hist = "".join("<HISTORY>%s</HISTORY>" % "".join(
            ("<%s>%s</%s>" % (k, cdata(v), k) if k in ("VM_MAD", "TM_MAD")
             else "<%s>%s</%s>" % (k, v, k)) for k, v in rec.items()) for rec in history)
        return (
            "<VM><ID>%d</ID><UID>%d</UID><GID>%d</GID><UNAME>%s</UNAME><GNAME>%s</GNAME>"
            "<NAME>%s</NAME>%s<LAST_POLL>%d</LAST_POLL><STATE>%d</STATE><LCM_STATE>%d"
            "</LCM_STATE><PREV_STATE>%d</PREV_STATE><PREV_LCM_STATE>%d</PREV_LCM_STATE>"
            "<RESCHED>0</RESCHED><STIME>%d</STIME><ETIME>0</ETIME><DEPLOY_ID>%s</DEPLOY_ID>"
            "<MONITORING>%s</MONITORING><SCHED_ACTIONS></SCHED_ACTIONS><TEMPLATE>%s</TEMPLATE>"
            "<USER_TEMPLATE>%s</USER_TEMPLATE>%s<BACKUPS><BACKUP_CONFIG/><BACKUP_IDS>"
            "</BACKUP_IDS></BACKUPS></VM>" % (
                vm.id, vm.uid, vm.gid, _esc(vm.uname), _esc(vm.gname), _esc(vm.name),
                PERMISSIONS_XML, vm.last_poll, vm.state, vm.lcm, vm.prev_state, vm.prev_lcm,
                vm.stime, _esc(vm.deploy_id), monitoring, render_attrs(template),
                render_attrs(user),
                "<HISTORY_RECORDS>%s</HISTORY_RECORDS>" % hist if hist
                else "<HISTORY_RECORDS/>"))

    def host_xml(self, host, usage, running, full=True):
        vm_ids = [v.id for v in self.vms.values() if host.id in v.allocated_on()]
        monitoring = "<MONITORING/>"
        if full:
            monitoring = (
                "<MONITORING><TIMESTAMP>%d</TIMESTAMP><ID>%d</ID><CAPACITY><FREE_CPU>700"
                "</FREE_CPU><FREE_MEMORY>%d</FREE_MEMORY><USED_CPU>100</USED_CPU>"
                "<USED_MEMORY>%d</USED_MEMORY></CAPACITY><SYSTEM><NETRX>0</NETRX><NETTX>0"
                "</NETTX></SYSTEM></MONITORING>" % (
                    self.epoch(), host.id, host.monitoring.get("FREE_MEMORY", 0),
                    host.monitoring.get("USED_MEMORY", 0)))
        return (
            "<HOST><ID>%d</ID><NAME>%s</NAME><STATE>%d</STATE><PREV_STATE>%d</PREV_STATE>"
            "<IM_MAD>%s</IM_MAD><VM_MAD>%s</VM_MAD><CLUSTER_ID>%d</CLUSTER_ID><CLUSTER>"
            "default</CLUSTER><HOST_SHARE><MEM_USAGE>%d</MEM_USAGE><CPU_USAGE>%d</CPU_USAGE>"
            "<TOTAL_MEM>%d</TOTAL_MEM><TOTAL_CPU>800</TOTAL_CPU><MAX_MEM>%d</MAX_MEM>"
            "<MAX_CPU>800</MAX_CPU><RUNNING_VMS>%d</RUNNING_VMS><VMS_THREAD>1</VMS_THREAD>"
            "<DATASTORES><DISK_USAGE>%s</DISK_USAGE><FREE_DISK>%s</FREE_DISK><MAX_DISK>%s"
            "</MAX_DISK><USED_DISK>%s</USED_DISK></DATASTORES><PCI_DEVICES></PCI_DEVICES>"
            "<NUMA_NODES></NUMA_NODES></HOST_SHARE><VMS>%s</VMS><TEMPLATE>%s</TEMPLATE>%s"
            "</HOST>" % (
                host.id, _esc(host.name), host.state, host.state, cdata(host.im_mad),
                cdata(host.vm_mad), host.cluster_id, usage[host.id], 100 * running[host.id],
                host.total_mem_kib, host.max_mem_kib(), running[host.id], cdata(0),
                cdata(20480), cdata(20480), cdata(0),
                "".join("<ID>%d</ID>" % i for i in vm_ids), render_attrs(host.template),
                monitoring))


def monitoring_xml(record):
    return "<MONITORING>%s</MONITORING>" % "".join(
        "<%s>%s</%s>" % (k, cdata(v), k) for k, v in sorted(record.items()))


def _esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _realistic_template(vm_id, name):
    """Attributes a real KVM VM carries (context, disks, NIC, graphics...)."""
    mac = "02:00:0a:%02x:%02x:%02x" % ((vm_id >> 16) & 255, (vm_id >> 8) & 255, vm_id & 255)
    ip = "10.%d.%d.%d" % ((vm_id >> 16) & 255, (vm_id >> 8) & 255, vm_id & 255)
    disk = {"ALLOW_ORPHANS": "FORMAT", "CLONE": "YES", "CLONE_TARGET": "SYSTEM",
            "CLUSTER_ID": "0", "DATASTORE": "default", "DATASTORE_ID": "1",
            "DEV_PREFIX": "vd", "DISK_ID": "0", "DISK_SNAPSHOT_TOTAL_SIZE": "0",
            "DISK_TYPE": "FILE", "DRIVER": "qcow2", "FORMAT": "qcow2", "IMAGE": "ubuntu2404",
            "IMAGE_ID": "3", "IMAGE_STATE": "2", "IMAGE_UNAME": "oneadmin", "LN_TARGET": "NONE",
            "ORIGINAL_SIZE": "3584", "READONLY": "NO", "SAVE": "NO", "SIZE": "20480",
            "SOURCE": "/var/lib/one//datastores/1/8d9c8fb4e2b1a9c8a35bdf0b5f0f8e7c",
            "TARGET": "vda", "TM_MAD": "ssh", "TYPE": "FILE"}
    swap = dict(disk, DISK_ID="1", TARGET="vdb", IMAGE="swap", IMAGE_ID="4", SIZE="2048",
                SOURCE="/var/lib/one//datastores/1/0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e")
    return {
        "AUTOMATIC_DS_REQUIREMENTS": "(\"CLUSTERS/ID\" @> 0)",
        "AUTOMATIC_NIC_REQUIREMENTS": "(\"CLUSTERS/ID\" @> 0)",
        "CONTEXT": {"DISK_ID": "2", "ETH0_DNS": "10.0.0.1", "ETH0_GATEWAY": "10.0.0.1",
                    "ETH0_IP": ip, "ETH0_MAC": mac, "ETH0_MASK": "255.0.0.0",
                    "ETH0_NETWORK": "10.0.0.0", "NETWORK": "YES",
                    "ONEGATE_ENDPOINT": "http://169.254.16.9:5030", "REPORT_READY": "YES",
                    "SET_HOSTNAME": name, "SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"
                    "AAAAIGd2bW9ja2tleWZvcnRlc3RzMDEyMzQ1Njc4OTAxMjM0NTY3 ops@frontend",
                    "TARGET": "hda", "TOKEN": "YES", "VMID": str(vm_id)},
        "DISK": [disk, swap],
        "FEATURES": {"ACPI": "yes", "GUEST_AGENT": "yes", "VIRTIO_SCSI_QUEUES": "auto"},
        "GRAPHICS": {"LISTEN": "0.0.0.0", "PORT": str(5900 + vm_id), "TYPE": "VNC"},
        "NIC": {"AR_ID": "0", "BRIDGE": "br0", "BRIDGE_TYPE": "linux", "CLUSTER_ID": "0",
                "IP": ip, "MAC": mac, "MODEL": "virtio", "NAME": "NIC0", "NETWORK": "public",
                "NETWORK_ID": "0", "NETWORK_UNAME": "oneadmin", "NIC_ID": "0",
                "SECURITY_GROUPS": "0", "TARGET": "one-%d-0" % vm_id, "VN_MAD": "bridge"},
    }
