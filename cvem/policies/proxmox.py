"""``proxmox``: Proxmox VE's auto-ballooning (pvestatd + ``PVE/AutoBalloon.pm``).

Source: ``shared/reference/peers.md`` §6.1. Every 10 s, per host: goal = total × target −
used (target 80 %); nothing happens when |goal| < 10 MiB. The goal is split across the VMs
by their shares (all equal here); each VM moves at most 100 MiB per evaluation, between its
balloon minimum and its maximum. Growth goes first to guests under memory pressure;
shrinking first to guests whose free memory exceeds 25 % of their minimum.

A host's used memory is the sum of its guests' allocations (:mod:`.host_rules`). Proxmox
looks at the host only: it keeps hosts at 80 % and leaves the rest to the guests.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.policy import FrontierKnob, Policy
from .host_rules import evaluations, host_total_kib, host_used_kib, used_or_alloc

MIB = 1024.0


class ProxmoxAutoBalloon(Policy):
    """Description: Proxmox auto-balloon: keep each host at 80 % used, 100 MiB per VM per 10 s.

    Inputs: host memory, guest used and pressure. Parameters: see ``Params``.
    Limitations: reclaims only what takes a host above its target; ignores guest history.
    """

    name = "proxmox"
    # the host share it keeps in use, from cautious to bold (shipped: 0.80)
    frontier_knob = FrontierKnob("target_ratio", (0.9, 0.8, 0.6, 0.4, 0.2, 0.0))

    @dataclass(frozen=True)
    class Params:
        target_ratio: float = field(default=0.80, metadata={
            "min": 0.0, "max": 1.0, "help": "host memory share to keep in use"})
        max_change_kib: float = field(default=100 * MIB, metadata={
            "min": 1.0, "help": "largest move of one VM per evaluation"})
        deadband_kib: float = field(default=10 * MIB, metadata={
            "min": 0.0, "help": "host goals smaller than this are ignored"})
        balloon_min_ratio: float = field(default=0.0, metadata={
            "min": 0.0, "max": 1.0, "help": "each VM's balloon minimum, × maximum"})
        free_first_ratio: float = field(default=0.25, metadata={
            "min": 0.0, "max": 1.0,
            "help": "guests whose free memory exceeds this × minimum shrink first"})
        evaluation_s: float = field(default=10.0, metadata={
            "min": 1.0, "help": "pvestatd's interval"})

    def initial_state(self):
        return {"last_s": np.full(1, np.nan)}

    def propose(self, obs, state):
        p = self.params
        cur = obs.allocated_kib.astype(np.float64)
        nominal = obs.nominal_kib.astype(np.float64)
        lowest = p.balloon_min_ratio * nominal
        used = used_or_alloc(obs)
        total = host_total_kib(obs)
        for _ in range(evaluations(state, obs.now_s, p.evaluation_s)):
            goal = total * p.target_ratio - host_used_kib(obs, cur)
            goal = np.where(np.abs(goal) < p.deadband_kib, 0.0, goal)
            grow = self._split(obs, np.maximum(goal, 0.0), cur < nominal, obs.pressure)
            roomy = (cur - used) > p.free_first_ratio * lowest
            shrink = self._split(obs, np.maximum(-goal, 0.0), cur > lowest, roomy)
            cur = np.clip(cur + np.minimum(grow, nominal - cur)
                          - np.minimum(shrink, np.maximum(cur - lowest, 0.0)), lowest, nominal)
        return cur, {"last_s": np.full(obs.size, obs.now_s)}

    def _split(self, obs, goal_kib, able, first):
        """[vm] each VM's part of its host's goal: equal shares, the ``first`` VMs served
        before the others, at most ``max_change_kib`` each."""
        cap = self.params.max_change_kib
        out = np.zeros(obs.size)
        left = goal_kib.copy()
        for group in (able & first, able & ~first):
            count = np.bincount(obs.host_index[group], minlength=left.size)
            share = np.where(count > 0, left / np.maximum(count, 1), 0.0)
            part = np.where(group, np.minimum(share[obs.host_index], cap), 0.0)
            out += part
            left = np.maximum(left - np.bincount(obs.host_index, weights=part,
                                                 minlength=left.size), 0.0)
        return out
