"""cvem's configuration file: INI sections validated into frozen dataclasses at start-up.

Sections: ``[cvem]`` (the service), ``[one]`` (how to reach oned), ``[guards]`` (overrides of
the shared guards, see :class:`cvem.core.guards.GuardParams`), ``[policy:<name>]`` (the
parameters of the policy named in ``[cvem] policy``), ``[migration]`` (overload protection:
``enabled`` plus :class:`cvem.core.migration.MigrationParams`) and ``[overload:<name>]``
(the parameters of the detector named in ``[migration] detector``), ``[lend]`` (lending
memory to the scheduler: :class:`cvem.lending.target.LendParams`) and ``[lend:<name>]`` (the
parameters of the strategy named in ``[lend] strategy``). Any unknown section or
key, and any value of the wrong type or out of range, is a
:class:`~cvem.errors.ConfigError` naming it. Precedence: in-code defaults < file <
command-line options. ``etc/cvem.conf`` is the commented reference.
"""
from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Mapping, Optional, Tuple

from .core.guards import GuardParams
from .core.params import build_params
from .errors import ConfigError

DEFAULT_CONFIG_FILE = "/etc/one/cvem.conf"


def _split(text: str) -> Tuple[str, ...]:
    return tuple(part.strip() for part in text.replace("\n", ",").split(",") if part.strip())


@dataclass(frozen=True)
class ServiceParams:
    period_s: float = field(default=10.0, metadata={
        "min": 0.5, "help": "seconds between the starts of two cycles"})
    policy: str = field(default="default", metadata={"help": "policy name (cvem policies)"})
    state_db: str = field(default="/var/lib/one/cvem/state.db", metadata={
        "help": "sqlite file with histories, report freshness and in-flight actions"})
    dry_run: bool = field(default=False, metadata={"help": "plan and log, never act"})
    live_resize_vm_mads: str = field(default="cloudvamp,kvm", metadata={
        "help": "VM_MAD names registered with LIVE_RESIZE=yes in oned.conf"})
    users: str = field(default="", metadata={"help": "only VMs of these users (names/IDs)"})
    groups: str = field(default="", metadata={"help": "only VMs of these groups"})
    clusters: str = field(default="", metadata={"help": "only VMs in these cluster IDs"})
    stale_after_s: float = field(default=120.0, metadata={
        "min": 1.0, "help": "a guest report whose sequence did not change for this long is stale"})
    report_max_age_s: float = field(default=3900.0, metadata={
        "min": 1.0, "help": "an unchanged OneGate report past stale_after_s stays current up "
                            "to this long while the probe's fresh balloon statistics agree "
                            "with it (> the publisher's --heartbeat, 1800 s by default)"})
    report_agree_kib: int = field(default=128 * 1024, metadata={
        "min": 0, "help": "the probe's used memory agrees with a report within this ..."})
    report_agree_ratio: float = field(default=0.04, metadata={
        "min": 0.0, "max": 1.0, "help": "... or this fraction of the guest's MemTotal"})
    probe_fallback: bool = field(default=True, metadata={
        "help": "use the IM probe's balloon statistics when no fresh OneGate report"})
    max_actions_per_cycle: int = field(default=50, metadata={"min": 0})
    max_actions_per_s: float = field(default=5.0, metadata={"min": 0.01})
    max_updates_per_cycle: int = field(default=200, metadata={"min": 0})
    show_attributes: bool = field(default=True, metadata={
        "help": "write CLOUDVAMP_NOMINAL_MIB/STATE/REASON/LAST_ACTION into USER_TEMPLATE"})
    inflight_timeout_s: float = field(default=300.0, metadata={"min": 1.0})
    lend_ratio: float = field(default=1.0, metadata={
        "min": 0.0, "max": 1.0,
        "help": "fraction of reclaimed memory offered to the scheduler; 1.0 = off"})
    host_reserve_kib: int = field(default=0, metadata={
        "min": 0, "help": "physical memory kept free on every host (needs the host probe)"})
    host_probe_max_age_s: float = field(default=900.0, metadata={"min": 1.0})
    backoff_max_s: float = field(default=300.0, metadata={"min": 1.0})
    quota_hold: bool = field(default=True, metadata={
        "help": "lower owners' MEMORY/RUNNING_MEMORY quota limits by what cvem reclaimed from "
                "their VMs, so a grow back never fails for quota (docs/operations.md)"})
    metrics_address: str = field(default="127.0.0.1:9929", metadata={
        "help": "HOST:PORT of the metrics (/metrics) and status page (/); empty: off"})
    leader_only: bool = field(default=True, metadata={
        "help": "act only when one.zone.raftstatus says SOLO or LEADER (HA front-ends)"})
    handover: bool = field(default=True, metadata={
        "help": "keep cooldowns and in-flight actions in an oned document for a new leader"})

    def validate(self) -> None:
        if self.metrics_address.strip():
            from .monitor.server import parse_address
            parse_address(self.metrics_address)
        if not self.live_resize_vm_mads.strip():
            raise ConfigError("[cvem] live_resize_vm_mads: must name at least one VM_MAD")
        for name in _split(self.clusters):
            if not name.lstrip("-").isdigit():
                raise ConfigError(f"[cvem] clusters: {name!r} is not a cluster ID")

    @property
    def vm_mads(self) -> Tuple[str, ...]:
        return _split(self.live_resize_vm_mads)

    @property
    def user_filter(self) -> Tuple[str, ...]:
        return _split(self.users)

    @property
    def group_filter(self) -> Tuple[str, ...]:
        return _split(self.groups)

    @property
    def cluster_filter(self) -> Tuple[int, ...]:
        return tuple(int(c) for c in _split(self.clusters))


@dataclass(frozen=True)
class OneParams:
    endpoint: str = field(default="", metadata={
        "help": "XML-RPC URL; empty: $ONE_XMLRPC, else http://localhost:2633/RPC2"})
    auth_file: str = field(default="", metadata={
        "help": "file with user:password; empty: $ONE_AUTH, else ~/.one/one_auth"})
    timeout_s: float = field(default=30.0, metadata={"min": 0.1})
    page_size: int = field(default=2000, metadata={
        "min": 0, "help": "VMs per vmpool.infoextended page; 0 = one request"})
    https_verify: bool = True

    def validate(self) -> None:
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"[one] endpoint: {self.endpoint!r} must be an "
                              "http(s)://host:2633/RPC2 URL")


@dataclass(frozen=True)
class MigrationSwitch:
    """The ``[migration]`` keys that are the service's, not the planner's."""

    enabled: bool = field(default=True, metadata={
        "help": "live-migrate VMs off a host that cannot give its guests their memory; "
                "no: resizes only, grows that do not fit are logged as needs_room"})
    owner: str = field(default="cvem", metadata={
        "help": "who live-migrates VMs for memory when OneDRS runs too: cvem | onedrs "
                "(onedrs: cvem only resizes)"})
    onedrs_blocked: bool = field(default=False, metadata={
        "help": "write ONEDRS_BLOCKED=YES into managed VMs so OneDRS optimisation leaves "
                "them on their host (owner = cvem)"})

    def validate(self) -> None:
        if self.owner not in ("cvem", "onedrs"):
            raise ConfigError(f"[migration] owner={self.owner!r}; choose cvem or onedrs")


def build_migration_config(values: Mapping[str, Any],
                           detectors: Mapping[str, Mapping[str, Any]]):
    """(enabled, :class:`cvem.core.migration.MigrationConfig`) from ``[migration]`` and
    ``[overload:<name>]``; errors name the section and key."""
    import dataclasses

    from .core.migration import MigrationParams, load_migration_config
    from .core.overload import DETECTORS, load_detector
    values = dict(values)
    switch_keys = {f.name for f in dataclasses.fields(MigrationSwitch)}
    known = switch_keys | {f.name for f in dataclasses.fields(MigrationParams)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"[migration] unknown parameter(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    switch = build_params(MigrationSwitch, {k: v for k, v in values.items()
                                            if k in switch_keys}, "migration")
    rest = {k: v for k, v in values.items() if k not in switch_keys}
    for name, params in detectors.items():
        if name not in DETECTORS:
            raise ConfigError(f"[overload:{name}]: unknown overload detector; choose from "
                              f"{', '.join(sorted(DETECTORS))}")
        load_detector(name, params)   # fail early, naming the key
    detector = str(rest.get("detector", MigrationParams.detector)).strip()
    if detector not in DETECTORS:
        raise ConfigError(f"[migration] detector={detector!r}; choose from "
                          f"{', '.join(sorted(DETECTORS))}")
    return (switch.enabled and switch.owner == "cvem",
            load_migration_config(rest, detectors.get(detector, {})))


def migration_switch(values: Mapping[str, Any]) -> MigrationSwitch:
    """The service's own ``[migration]`` keys (already validated by parse_config)."""
    import dataclasses
    names = {f.name for f in dataclasses.fields(MigrationSwitch)}
    return build_params(MigrationSwitch, {k: v for k, v in values.items() if k in names},
                        "migration")


def build_lending_config(values: Mapping[str, Any], strategies: Mapping[str, Mapping[str, Any]],
                         lend_ratio: float = 1.0):
    from .lending.base import load_strategy, strategy_class
    from .lending.target import LendParams
    params = build_params(LendParams, values, "lend")
    name = params.strategy.strip()
    for other, other_values in strategies.items():
        strategy_class(other).from_config(other_values)   # fail early, naming the key
    chosen = dict(strategies.get(name, {}))
    if lend_ratio < 1.0:
        if name not in ("none", "fixed"):
            raise ConfigError(f"[cvem] lend_ratio={lend_ratio:g} conflicts with [lend] "
                              f"strategy={name}; set [lend:fixed] lend_ratio instead")
        name = "fixed"
        chosen.setdefault("lend_ratio", lend_ratio)
        params = replace(params, strategy=name)
    return params, load_strategy(name, chosen)


@dataclass(frozen=True)
class Config:
    service: ServiceParams = field(default_factory=ServiceParams)
    one: OneParams = field(default_factory=OneParams)
    guards: Mapping[str, str] = field(default_factory=dict)
    policies: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    source: str = "(defaults)"
    migration: Mapping[str, str] = field(default_factory=dict)
    detectors: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    lend: Mapping[str, str] = field(default_factory=dict)
    lenders: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def build_lending(self):
        """(LendParams, Strategy) from ``[lend]`` and ``[lend:<name>]``; ``[cvem] lend_ratio``
        below 1 is the ``fixed`` strategy's ``lend_ratio`` (the key it replaces)."""
        return build_lending_config(self.lend, self.lenders, self.service.lend_ratio)

    def build_migration(self):
        """(enabled, MigrationConfig) from ``[migration]`` and ``[overload:<name>]``."""
        return build_migration_config(self.migration, self.detectors)

    def policy_values(self, name: Optional[str] = None) -> Mapping[str, str]:
        return self.policies.get(name or self.service.policy, {})

    def build_decider(self):
        """The policy named in ``[cvem] policy`` with its ``[policy:..]`` and ``[guards]``."""
        from .core.decide import Decider
        from .policies.base import load_policy
        policy = load_policy(self.service.policy, self.policy_values())
        if getattr(policy, "simulation_only", False):
            raise ConfigError(f"[cvem] policy: {self.service.policy!r} needs the future and "
                              "only runs in simulation")
        return Decider(policy, policy.guard_params(self.guards))

    def with_overrides(self, endpoint: Optional[str] = None,
                       auth_file: Optional[str] = None) -> "Config":
        one = self.one
        if endpoint:
            one = replace(one, endpoint=endpoint)
        if auth_file:
            one = replace(one, auth_file=auth_file)
        return replace(self, one=one)


def parse_config(text: str, source: str = "<text>") -> Config:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"),
                                       default_section="__no_default__")
    parser.optionxform = str  # keep key case; build_params reports unknown ones
    try:
        parser.read_string(text, source=source)
    except configparser.Error as error:
        raise ConfigError(f"{source}: {error}") from None
    sections: Dict[str, Dict[str, Any]] = {s: dict(parser[s]) for s in parser.sections()}
    policies: Dict[str, Dict[str, str]] = {}
    detectors: Dict[str, Dict[str, str]] = {}
    lenders: Dict[str, Dict[str, str]] = {}
    for name in list(sections):
        if name.startswith("policy:"):
            policies[name.split(":", 1)[1].strip()] = sections.pop(name)
        elif name.startswith("overload:"):
            detectors[name.split(":", 1)[1].strip()] = sections.pop(name)
        elif name.startswith("lend:"):
            lenders[name.split(":", 1)[1].strip()] = sections.pop(name)
    unknown = sorted(set(sections) - {"cvem", "one", "guards", "migration", "lend"})
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {', '.join('[%s]' % u for u in unknown)}"
                          "; known: [cvem], [one], [guards], [policy:<name>], [migration], "
                          "[overload:<name>], [lend], [lend:<name>]")
    service = build_params(ServiceParams, sections.get("cvem", {}), "cvem")
    one = build_params(OneParams, sections.get("one", {}), "one")
    guards = sections.get("guards", {})
    build_params(GuardParams, guards, "guards")  # fail early, naming the key
    config = Config(service=service, one=one, guards=guards, policies=policies, source=source,
                    migration=sections.get("migration", {}), detectors=detectors,
                    lend=sections.get("lend", {}), lenders=lenders)
    config.build_decider()  # the policy exists and its parameters are valid
    config.build_migration()  # so do the detector and the migration settings
    config.build_lending()    # and the lending strategy with its parameters
    return config


def load_config(path: Optional[str] = None, required: bool = False) -> Config:
    """The configuration at ``path`` (default /etc/one/cvem.conf). A missing default file
    means built-in defaults; a missing explicit file is an error."""
    explicit = path is not None
    path = path or DEFAULT_CONFIG_FILE
    if not os.path.exists(path):
        if explicit or required:
            raise ConfigError(f"configuration file {path} does not exist")
        config = Config()
        config.build_decider()
        return config
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    return parse_config(text, source=path)
