"""Leader-only operation on an OpenNebula HA front-end.

Every front-end of a Raft zone runs cvem; only the one whose oned says SOLO (no HA) or
LEADER in ``one.zone.raftstatus`` acts, as OpenNebula's own scheduler and PlanManager do
(``RaftManager::is_leader() || is_solo()``). A FOLLOWER or CANDIDATE idles: one
raftstatus call per period, no reads, no writes. When a node becomes the one that acts,
it first takes over what the previous leader left in oned (:mod:`cvem.service.handover`).

Raft states, from OpenNebula 7.4's ``include/RaftManager.h``: 0 SOLO, 1 CANDIDATE,
2 FOLLOWER, 3 LEADER.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Protocol

from ..errors import AdapterError
from ..ports import AuthFailed, OneCallFailed, Unreachable

LOG = logging.getLogger(__name__)

RAFT_STATES = {0: "SOLO", 1: "CANDIDATE", 2: "FOLLOWER", 3: "LEADER"}
ACTING_STATES = ("SOLO", "LEADER")


class RaftReader(Protocol):
    def raft_state(self) -> int:
        """``one.zone.raftstatus`` STATE."""


@dataclass(frozen=True)
class Role:
    name: str                 # SOLO, LEADER, FOLLOWER, CANDIDATE, UNKNOWN
    acting: bool
    took_over: bool = False   # this check made the node the acting one


class LeaderGate:
    """Asks oned every cycle whether this front-end may act."""

    def __init__(self, cloud: RaftReader):
        self.cloud = cloud
        self.role: Optional[Role] = None

    def check(self) -> Role:
        try:
            state = self.cloud.raft_state()
            name = RAFT_STATES.get(state, f"STATE {state}")
        except (Unreachable, AuthFailed):
            raise   # the service backs off as for any cycle that cannot reach oned
        except (OneCallFailed, AdapterError, ValueError) as error:
            # Not knowing means not acting: two leaders would fight over the same VMs.
            name = "UNKNOWN"
            if self.role is None or self.role.name != name:
                LOG.error("cannot read the Raft state (one.zone.raftstatus): %s; idling "
                          "(set [cvem] leader_only = no on a front-end without HA)", error)
        acting = name in ACTING_STATES
        was_acting = self.role is not None and self.role.acting
        role = Role(name, acting, took_over=acting and not was_acting)
        if self.role is None or self.role.name != name:
            LOG.info("Raft state %s: %s", name, "acting" if acting else
                     "idle (another front-end acts)")
        self.role = role
        return role


class AlwaysActing:
    """``leader_only = no``: a single front-end that never asks."""

    def __init__(self):
        self.role: Optional[Role] = None

    def check(self) -> Role:
        role = Role("-", True, took_over=self.role is None)
        self.role = role
        return role
