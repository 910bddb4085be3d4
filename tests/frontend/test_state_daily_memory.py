"""The default policy's time-of-day memory of starved levels survives a restart through the
state DB, and a state DB written before it existed still loads (the memory starts empty)."""
import numpy as np

from cvem.core.decide import Decider
from cvem.core.fleet import FleetHistory
from cvem.policies import load_policy
from cvem.service.state import StateStore
from tests.core.builders import GIB, NOW, make_hosts, make_obs

DAILY = ("policy.starved_daily_kib", "policy.starved_daily_s")


def _decider():
    return Decider(load_policy("default", {"starved_half_life_s": 0, "shrink_band_ratio": 0,
                                           "grow_headroom_ratio": 0}))


def _quiet(now):
    return make_obs(2, nominal=32 * GIB, alloc=2 * GIB, used=1 * GIB, vm_ids=[5, 9], now=now)


def _reload(tmp_path, history):
    path = str(tmp_path / "state.db")
    store = StateStore(path)
    store.save_cycle(history, {})
    store.close()
    store = StateStore(path)
    try:
        return store.load_history()
    finally:
        store.close()


def test_the_time_of_day_memory_survives_a_restart(tmp_path):
    decider = _decider()
    starving = make_obs(2, nominal=32 * GIB, alloc=2 * GIB, used=2 * GIB,
                        pressure=[True, False], deficit=[8 * GIB, 0], vm_ids=[5, 9])
    history = decider.cycle(starving, make_hosts(room=[100 * GIB]), FleetHistory()).history
    loaded = _reload(tmp_path, history)
    for name in DAILY:
        assert np.array_equal(loaded.columns[name], history.columns[name])
    next_day = decider.cycle(_quiet(NOW + 86400 - 1800), make_hosts(room=[100 * GIB]), loaded)
    assert next_day.target_kib[0] >= 10 * GIB                 # held ahead of the peak
    assert next_day.target_kib[1] < 4 * GIB


def test_a_state_db_from_before_the_time_of_day_memory_loads(tmp_path):
    decider = _decider()
    history = decider.cycle(_quiet(NOW), make_hosts(room=[100 * GIB]), FleetHistory()).history
    old = FleetHistory(vm_ids=history.vm_ids,
                       columns={k: v for k, v in history.columns.items() if k not in DAILY})
    loaded = _reload(tmp_path, old)
    cycle = decider.cycle(_quiet(NOW + 600), make_hosts(room=[100 * GIB]), loaded)
    assert cycle.history.columns[DAILY[0]].shape == (2, 48)
    assert np.array_equal(cycle.history.columns["guard.last_change_s"],
                          loaded.columns["guard.last_change_s"])  # the rest is kept


def test_a_changed_time_of_day_resolution_restarts_the_memory_instead_of_crashing(tmp_path):
    # An operator turns the time-of-day memory on (or changes starved_daily_slot_s) and
    # restarts cvem: the stored arrays have another number of slots for the same VMs.
    off = Decider(load_policy("default", {"starved_daily_half_life_s": 0}))
    history = off.cycle(_quiet(NOW), make_hosts(room=[100 * GIB]), FleetHistory()).history
    assert history.columns[DAILY[0]].shape == (2, 1)
    loaded = _reload(tmp_path, history)
    on = Decider(load_policy("default", {"starved_daily_slot_s": 900}))
    starving = make_obs(2, nominal=32 * GIB, alloc=2 * GIB, used=2 * GIB,
                        pressure=[True, False], deficit=[8 * GIB, 0], vm_ids=[5, 9],
                        now=NOW + 600)              # 22:23 UTC: slot 89 of 96
    cycle = on.cycle(starving, make_hosts(room=[100 * GIB]), loaded)
    assert cycle.history.columns[DAILY[0]].shape == (2, 96)
    assert cycle.history.columns[DAILY[0]][0].max() == 10 * GIB
