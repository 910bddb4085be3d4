"""Overload detectors (cvem.core.overload): Neat's THR, MAD, IQR and LR on memory demand."""
import numpy as np
import pytest

from cvem.core.overload import detect, load_detector
from cvem.errors import ConfigError

GIB = 1024 * 1024
USABLE = np.array([64.0 * GIB])


def hist(values_gib):
    return np.array([values_gib], dtype=np.float64) * GIB


def times(n, step_s=10.0):
    return np.arange(n) * step_s


def test_threshold_compares_the_last_demand_with_ratio_of_usable():
    det = load_detector("threshold", {"ratio": "0.9"})
    assert not detect(det, hist([50, 57]), times(2), USABLE, np.zeros(1)).overloaded[0]
    load = detect(det, hist([50, 60]), times(2), USABLE, np.zeros(1))
    assert load.overloaded[0]
    assert load.excess_kib[0] == pytest.approx((60 - 0.9 * 64) * GIB)


def test_no_history_is_never_overloaded_by_forecast():
    for name in ("threshold", "mad", "iqr", "local-regression"):
        load = detect(load_detector(name), np.full((1, 5), np.nan), times(5), USABLE,
                      np.zeros(1))
        assert not load.overloaded[0], name


def test_mad_lowers_the_limit_for_a_host_that_swings():
    det = load_detector("mad", {"safety": 2.5, "min_samples": 12})
    flat = hist([40.0] * 20)
    swinging = hist([30, 50] * 10)
    flat_load = detect(det, flat, times(20), USABLE, np.zeros(1))
    swing_load = detect(det, swinging, times(20), USABLE, np.zeros(1))
    assert flat_load.limit_kib[0] == pytest.approx(USABLE[0])
    assert swing_load.limit_kib[0] < flat_load.limit_kib[0]
    assert swing_load.overloaded[0]       # last = 50 GiB, above 1 − 2.5 × MAD
    assert not flat_load.overloaded[0]


def test_mad_waits_for_min_samples():
    det = load_detector("mad", {"min_samples": 12})
    load = detect(det, hist([30, 50] * 5), times(10), USABLE, np.zeros(1))
    assert not load.overloaded[0]


def test_iqr_lowers_the_limit_for_a_host_that_swings():
    det = load_detector("iqr")
    load = detect(det, hist([20, 50] * 10), times(20), USABLE, np.zeros(1))
    assert load.limit_kib[0] < USABLE[0]
    assert load.overloaded[0]


def test_local_regression_extrapolates_to_now_plus_migration_time():
    det = load_detector("local-regression", {"safety": 1.0, "length": 10})
    rising = hist([40 + 2 * i for i in range(10)])       # 58 GiB now, +2 GiB / 10 s
    soon = detect(det, rising, times(10), USABLE, np.array([10.0]))
    later = detect(det, rising, times(10), USABLE, np.array([60.0]))
    assert not soon.overloaded[0]                      # 60 GiB in 10 s
    assert later.overloaded[0]                         # 70 GiB in 60 s
    flat = detect(det, hist([58.0] * 10), times(10), USABLE, np.array([600.0]))
    assert not flat.overloaded[0]


def test_local_regression_safety_factor():
    det = load_detector("local-regression")             # Neat's 1.2
    load = detect(det, hist([55.0] * 10), times(10), USABLE, np.array([10.0]))
    assert load.overloaded[0]                          # 1.2 × 55 > 64


def test_unknown_detector_and_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="unknown overload detector"):
        load_detector("mhod")
    with pytest.raises(ConfigError, match="safety"):
        load_detector("mad", {"safety": "-1"})
    with pytest.raises(ConfigError, match="unknown parameter"):
        load_detector("threshold", {"bogus": "1"})
