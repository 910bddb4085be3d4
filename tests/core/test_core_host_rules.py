"""The host-level arms from the references: oVirt MoM's default balloon rules (peers.md §3.2)
and Proxmox auto-ballooning (§6.1)."""
from dataclasses import replace

import numpy as np
import pytest

from cvem.core.fleet import HostColumns
from cvem.policies import load_policy

from tests.core.builders import GIB, MIB, NOW, make_obs


def _on_host(obs, usable_gib):
    hosts = HostColumns(host_ids=np.array([0]), capacity_kib=np.array([usable_gib * GIB]),
                        allocated_kib=np.array([int(obs.allocated_kib.sum())]),
                        physical_room_kib=np.array([0]), usable_kib=np.array([usable_gib * GIB]))
    return replace(obs, hosts=hosts)


def _cycle(policy, obs, state=None):
    state = state if state is not None else {
        k: np.repeat(v, obs.size, axis=0) for k, v in policy.initial_state().items()}
    return policy.propose(obs, state)


def test_mom_shrinks_by_5_pct_per_evaluation_under_host_pressure():
    mom = load_policy("mom")
    # 2 × 9 GiB on a 20 GiB host: 10 % free, under the 20 % threshold
    obs = _on_host(make_obs(2, nominal=10 * GIB, alloc=9 * GIB, used=2 * GIB), 20)
    target, state = _cycle(mom, obs)
    assert target == pytest.approx([9 * GIB * 0.95] * 2)
    # 300 s later: 30 evaluations, ±5 % each: the host settles around 20 % free
    target, _ = _cycle(mom, replace(obs, now_s=NOW + 300), state)
    assert target.sum() == pytest.approx(16 * GIB, rel=0.06)


def test_mom_grows_every_guest_when_the_host_has_room():
    mom = load_policy("mom")
    obs = _on_host(make_obs(2, nominal=8 * GIB, alloc=2 * GIB, used=1 * GIB), 64)
    target, _ = _cycle(mom, obs)
    assert target == pytest.approx([2 * GIB * 1.05] * 2)


def test_proxmox_moves_each_vm_at_most_100_mib_per_evaluation_toward_80_pct():
    px = load_policy("proxmox")
    # 2 × 10 GiB on a 20 GiB host: goal = 16 − 20 = −4 GiB, split by equal shares
    obs = _on_host(make_obs(2, nominal=10 * GIB, alloc=10 * GIB, used=1 * GIB), 20)
    target, state = _cycle(px, obs)
    assert target == pytest.approx([10 * GIB - 100 * MIB] * 2)
    # after 300 s (30 evaluations) the host sits at its 80 % target
    target, _ = _cycle(px, replace(obs, now_s=NOW + 300), state)
    assert target.sum() == pytest.approx(16 * GIB, abs=10 * MIB)


def test_proxmox_grows_guests_under_pressure_first():
    px = load_policy("proxmox", {"max_change_kib": 1024 * MIB})
    # 8 GiB free below the 80 % target on a 20 GiB host... only 1 GiB to give
    obs = _on_host(make_obs(2, nominal=10 * GIB, alloc=7.5 * GIB, used=7 * GIB,
                            pressure=[False, True]), 20)
    target, _ = _cycle(px, obs)
    assert target[1] == pytest.approx(8.5 * GIB) and target[0] == pytest.approx(7.5 * GIB)


def test_proxmox_ignores_goals_under_10_mib():
    px = load_policy("proxmox")
    obs = _on_host(make_obs(1, nominal=20 * GIB, alloc=int(16 * GIB - 5 * MIB), used=GIB), 20)
    target, _ = _cycle(px, obs)
    assert target[0] == obs.allocated_kib[0]
