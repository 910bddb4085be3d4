"""``cvem run | plan | status | check-config``: cvem against a real OpenNebula front-end."""
from __future__ import annotations

import json
import logging
import signal
import threading

import click

from ..config import Config, load_config
from ..errors import CloudvampError
from . import cli, connection_options

LOG = logging.getLogger("cvem")


def _config(ctx) -> Config:
    obj = ctx.obj or {}
    config = load_config(obj.get("config_file"))
    return config.with_overrides(endpoint=obj.get("endpoint"), auth_file=obj.get("auth_file"))


def _connect(config: Config):
    from ..adapters.one import OneCloud, auth_file_path, read_session, resolve_endpoint
    one = config.one
    endpoint = resolve_endpoint(one.endpoint or None)
    session = read_session(auth_file_path(one.auth_file or None))
    return OneCloud(endpoint, session, timeout_s=one.timeout_s, page_size=one.page_size,
                    https_verify=one.https_verify)


def _service(config: Config, readonly: bool, reset_state: bool = False):
    from ..service.runner import Service
    from ..service.state import StateStore
    store = StateStore(config.service.state_db, readonly=readonly, reset=reset_state)
    if reset_state:
        LOG.warning("state DB %s reset (--reset-state): cooldowns, histories and in-flight "
                    "records start empty", config.service.state_db)
    elif store.created:
        LOG.info("state DB %s created (first start)", config.service.state_db)
    return Service(config, _connect(config), store)


def _fail(error: Exception):
    raise click.ClickException(str(error))


LCM_NAMES = {3: "RUNNING", 4: "MIGRATE", 7: "SAVE_MIGRATE", 8: "PROLOG_MIGRATE",
             16: "UNKNOWN", 66: "HOTPLUG_RESIZE"}


def _dry_cycle(ctx):
    """One read-only cycle that changes nothing in oned or the state DB (plan, status)."""
    try:
        service = _service(_config(ctx), readonly=True)
    except CloudvampError as error:
        _fail(error)
    try:
        return service.cycle(dry_run=True)
    except CloudvampError as error:
        _fail(error)
    finally:
        service.store.close()


def _mib(kib):
    return None if kib is None else int(kib) // 1024


def plan_rows(report):
    """One row per planned action; every row has the same keys. A migrate row's
    ``from_mib``/``to_mib`` are the VM's MEMORY (what it moves with, unchanged by the move),
    ``host`` its source and ``to_host`` its target; ``to_host`` is null on other rows."""
    rows = []
    raw_vms = report.observation.raw_vms
    for a in report.plan.actions:
        if hasattr(a, "to_kib"):
            rows.append({"vm": a.vm_id, "host": a.host_id, "action": a.action,
                         "from_mib": _mib(a.from_kib), "to_mib": _mib(a.to_kib),
                         "reason": a.reason, "to_host": None})
        else:  # a live migration chosen by overload protection
            raw = raw_vms.get(a.vm_id)
            size = raw.memory_mib if raw is not None else None
            rows.append({"vm": a.vm_id, "host": a.from_host_id, "action": "migrate",
                         "from_mib": size, "to_mib": size, "reason": a.reason,
                         "to_host": a.to_host_id})
    for n in report.plan.needs_room:
        rows.append({"vm": n.vm_id, "host": n.host_id, "action": "needs-room",
                     "from_mib": None, "to_mib": _mib(n.missing_kib), "reason": n.reason,
                     "to_host": None})
    return rows


def migration_rows(report):
    """The live migrations cvem started and has not seen finished (state DB), as oned
    shows them now."""
    rows = []
    raw_vms = report.observation.raw_vms
    for m in report.migrations_in_flight:
        raw = raw_vms.get(m.vm_id)
        if raw is None:
            state = "gone"
        elif raw.state == 3:
            state = LCM_NAMES.get(raw.lcm_state, str(raw.lcm_state))
        else:
            state = f"state {raw.state}"
        rows.append({"vm": m.vm_id, "from_host": m.from_host_id, "to_host": m.to_host_id,
                     "size_mib": _mib(m.size_kib), "reason": m.reason,
                     "started_s": m.started_s,
                     "age_s": round(max(report.now_s - m.started_s, 0.0), 1),
                     "oned_state": state,
                     "oned_host": raw.host_id if raw is not None else None})
    return rows


def status_document(report):
    from ..service.lend import reclaimed_kib_by_host
    obs = report.observation
    reclaimed = reclaimed_kib_by_host(obs.statuses)
    views = {h.host_id: h for h in obs.snapshot.hosts}
    hosts = []
    for host_id, raw in sorted(obs.raw_hosts.items()):
        view = views[host_id]
        hosts.append({
            "host": host_id, "name": raw.name, "vm_mad": raw.vm_mad, "state": raw.state,
            "physical_mib": _mib(view.physical_kib), "max_mem_mib": _mib(raw.max_mem_kib),
            "mem_usage_mib": _mib(raw.mem_usage_kib),
            "reclaimed_mib": _mib(reclaimed.get(host_id, 0)),
            "held_back_mib": _mib(obs.lend_extra_kib.get(host_id, 0)),
            "reserved_mem": raw.reserved_mem})
    vms = []
    for st in obs.statuses:
        vms.append({
            "vm": st.vm_id, "name": st.name, "host": st.host_id, "state": st.state,
            "nominal_mib": _mib(st.nominal_kib), "current_mib": _mib(st.allocated_kib),
            "guest_used_mib": _mib(st.guest_used_kib), "source": st.guest_source,
            "managed": st.managed, "reason": st.reason, "report_problem": st.report_problem,
            "self_deflated_mib": _mib(st.self_deflated_kib)})
    return {"hosts": hosts, "vms": vms, "migrations": migration_rows(report)}


def _table(rows, columns):
    def cell(v):
        return "-" if v is None else str(v)
    widths = [max([len(c)] + [len(cell(r[c])) for r in rows]) for c in columns]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths))]
    for r in rows:
        lines.append("  ".join(cell(r[c]).ljust(w) for c, w in zip(columns, widths)))
    return "\n".join(lines)


@cli.command()
@connection_options
@click.option("--once", is_flag=True, help="Run a single cycle and exit.")
@click.option("--dry-run", is_flag=True, help="Plan and log, never act (overrides config).")
@click.option("--reset-state", is_flag=True,
              help="Start with an empty state DB (forgets cooldowns, histories and in-flight "
                   "records); needed once after the state DB was lost.")
@click.option("--metrics-address", metavar="HOST:PORT", default=None,
              help="Serve Prometheus metrics (/metrics) and the status page (/) here "
                   "(overrides [cvem] metrics_address, default 127.0.0.1:9929; '' = off). "
                   "Not served with --once.")
@click.pass_context
def run(ctx, once, dry_run, reset_state, metrics_address):
    """Run the cvem service: every period read the cloud, decide, resize VMs and (unless
    [migration] enabled = no) live-migrate VMs off hosts that cannot grow their guests.

    Stops cleanly on SIGTERM/SIGINT (the cycle in progress finishes first). State
    (histories, report freshness, in-flight actions) lives in [cvem] state_db.

    \b
    Example:
      cvem --config /etc/one/cvem.conf run --metrics-address 127.0.0.1:9929
    """
    from dataclasses import replace
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    try:
        config = _config(ctx)
        if dry_run:
            config = replace(config, service=replace(config.service, dry_run=True))
        if metrics_address is not None:
            config = replace(config, service=replace(config.service,
                                                     metrics_address=metrics_address))
            config.service.validate()
        service = _service(config, readonly=False, reset_state=reset_state)
        server = None if once else _monitor(service, config.service.metrics_address)
    except CloudvampError as error:
        _fail(error)
    stop = threading.Event()

    def _stop(signum, _frame):
        LOG.info("signal %d: stopping after the current cycle", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, _stop)
        except ValueError:  # not the main thread (tests)
            pass
    try:
        service.run(stop, max_cycles=1 if once else None)
    finally:
        if server is not None:
            server.stop()
        service.store.close()   # checkpoints the WAL: nothing of it outlives the command
    if once and service.last_error:
        _fail(service.last_error)   # a single cycle that failed is a failed command


def _monitor(service, address: str):
    """Metrics and the status page, fed by the service's cycles (None when off)."""
    if not address.strip():
        return None
    from ..monitor.server import MonitorServer
    from ..monitor.state import Monitor
    monitor = Monitor(service.params.period_s)
    service.observers.append(monitor)
    return MonitorServer(monitor, address).start()


@cli.command()
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of actions.")
@click.pass_context
def plan(ctx, as_json):
    """One dry-run cycle: what cvem would do now (nothing is changed, not even its state).

    \b
    Example:
      cvem --endpoint http://fe:2633/RPC2 --auth ~/.one/one_auth plan --json
    """
    report = _dry_cycle(ctx)
    rows = plan_rows(report)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo("nothing to do")
        return
    click.echo(_table(rows, ("vm", "host", "action", "from_mib", "to_mib", "reason",
                             "to_host")))


@cli.command()
@connection_options
@click.option("--json", "as_json", is_flag=True,
              help='Print {"hosts": [...], "vms": [...], "migrations": [...]}.')
@click.pass_context
def status(ctx, as_json):
    """Hosts (physical, MAX_MEM, MEM_USAGE, reclaimed), VMs (nominal, current, guest
    used, managed or why not) and live migrations in flight, as cvem sees them now.

    \b
    Example:
      cvem status --json | jq '.vms[] | select(.managed | not) | .reason'
    """
    report = _dry_cycle(ctx)
    doc = status_document(report)
    if as_json:
        click.echo(json.dumps(doc, indent=1))
        return
    click.echo(_table(doc["hosts"], ("host", "name", "physical_mib", "max_mem_mib",
                                     "mem_usage_mib", "reclaimed_mib", "held_back_mib")))
    click.echo("")
    click.echo(_table(doc["vms"], ("vm", "name", "host", "state", "nominal_mib", "current_mib",
                                   "guest_used_mib", "managed", "reason")))
    click.echo("")
    if doc["migrations"]:
        click.echo(_table(doc["migrations"], ("vm", "from_host", "to_host", "size_mib",
                                              "reason", "age_s", "oned_state", "oned_host")))
    else:
        click.echo("no live migration in flight")


@cli.command("check-config")
@connection_options
@click.pass_context
def check_config(ctx):
    """Validate the configuration file (and the policy it names) without contacting oned.

    \b
    Example:
      cvem --config /etc/one/cvem.conf check-config
    """
    try:
        config = _config(ctx)
    except CloudvampError as error:
        _fail(error)
    s = config.service
    click.echo(f"{config.source}: OK (policy {s.policy}, period {s.period_s:g} s, "
               f"state_db {s.state_db}, live resize VM_MADs {', '.join(s.vm_mads)}, "
               f"lend_ratio {s.lend_ratio:g}{' (off)' if s.lend_ratio >= 1 else ''}, "
               f"lending {config.build_lending()[1].name}, {_migration_summary(config)})")


def _migration_summary(config: Config) -> str:
    enabled, mig = config.build_migration()
    if not enabled:
        return "migrations off"
    p = mig.params
    return (f"migrations on: detector {p.detector}, selection {p.selection}, host cooldown "
            f"{p.host_cooldown_s:g} s, max {p.max_per_cycle or 'unlimited'} per cycle")
