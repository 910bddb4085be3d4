"""Time-of-day memory of levels (cvem/core/daily_memory.py)."""
import numpy as np

from cvem.core.daily_memory import daily_floor, record_daily, slot_of_day

GIB = 1024 * 1024
SLOT_S = 1800.0
DAY_S = 86400.0
WEEK_S = 7 * DAY_S


def _empty(n=1):
    return np.zeros((n, 48)), np.full((n, 48), -np.inf)


def test_a_level_goes_to_its_slot_and_only_the_rows_asked():
    levels, stamps = _empty(2)
    now = 10 * DAY_S + 3 * 3600 + 100
    levels2, stamps2 = record_daily(levels, stamps, now, SLOT_S, WEEK_S,
                                    np.array([4.0 * GIB, 9.0 * GIB]), np.array([True, False]))
    col = slot_of_day(now, SLOT_S)
    assert col == 6
    assert levels2[0, col] == 4 * GIB and stamps2[0, col] == now
    assert levels2[1].max() == 0 and np.isneginf(stamps2[1]).all()
    assert levels.max() == 0                                   # inputs untouched


def test_the_floor_looks_around_the_time_of_day_across_midnight():
    levels, stamps = _empty()
    late = 3 * DAY_S + 23.75 * 3600                            # 23:45
    levels, stamps = record_daily(levels, stamps, late, SLOT_S, WEEK_S,
                                  np.array([8.0 * GIB]), np.array([True]))
    next_early = late + DAY_S - 22.5 * 3600                    # 01:15 the next day
    floor = daily_floor(levels, stamps, next_early, SLOT_S, WEEK_S, 7200, 7200)
    assert floor[0] > 0                                         # within two hours, over midnight
    noon = daily_floor(levels, stamps, late + DAY_S - 11.75 * 3600, SLOT_S, WEEK_S, 7200, 7200)
    assert noon[0] == 0


def test_an_old_level_decays_and_a_new_one_replaces_it_when_larger():
    levels, stamps = _empty()
    t0 = 5 * DAY_S
    levels, stamps = record_daily(levels, stamps, t0, SLOT_S, WEEK_S,
                                  np.array([8.0 * GIB]), np.array([True]))
    a_week_on = daily_floor(levels, stamps, t0 + WEEK_S, SLOT_S, WEEK_S, 0, 0)
    assert a_week_on[0] == 4 * GIB
    levels, stamps = record_daily(levels, stamps, t0 + WEEK_S, SLOT_S, WEEK_S,
                                  np.array([3.0 * GIB]), np.array([True]))
    assert levels[0, slot_of_day(t0, SLOT_S)] == 4 * GIB       # the decayed 8 still larger
