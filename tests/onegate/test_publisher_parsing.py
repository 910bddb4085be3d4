"""The publisher's /proc parsing and figure computation, on fake /proc trees."""

import ast
import collections

import pytest

import cvem.keys
from tests.doubles.guest import PUBLISHER_PATH, FakeProc

PAGE_SIZE_KIB = 4.0


def test_key_names_are_the_cvem_contract(publisher):
    # The publisher cannot import cvem inside a guest, so it carries a copy of the names.
    assert publisher.GUEST_KEYS == cvem.keys.GUEST_KEYS
    for name in dir(cvem.keys):
        if name.startswith("GUEST_") and name != "GUEST_KEYS":
            assert getattr(publisher, name) == getattr(cvem.keys, name), name
    published = set(publisher.FIGURE_KEYS) | {publisher.GUEST_SEQ, publisher.GUEST_TIME}
    assert published == set(cvem.keys.GUEST_KEYS)


def test_publisher_source_parses_as_python_3_6():
    with open(PUBLISHER_PATH) as stream:
        source = stream.read()
    assert source.startswith("#!/usr/bin/env python3\n")
    ast.parse(source, feature_version=(3, 6))


def _sample(publisher, proc, monotonic_s=100.0, wall_time_s=1700000000.5):
    return publisher.take_sample(proc.root, wall_clock=lambda: wall_time_s,
                                 monotonic_clock=lambda: monotonic_s)


def test_figures_from_a_plain_guest(publisher, fake_proc):
    fake_proc.write(mem_total_kib=2097152, mem_available_kib=524288, swap_total_kib=1048576,
                    swap_free_kib=1000000, psi=(1.5, 0.25))
    figures = publisher.compute_figures(None, _sample(publisher, fake_proc), PAGE_SIZE_KIB)
    assert figures == collections.OrderedDict([
        ("CLOUDVAMP_MEM_TOTAL_KIB", "2097152"),
        ("CLOUDVAMP_MEM_AVAILABLE_KIB", "524288"),
        ("CLOUDVAMP_MEM_USED_KIB", str(2097152 - 524288)),
        ("CLOUDVAMP_SWAP_USED_KIB", "48576"),
        # no previous sample: a rate is unknowable, and says so with an empty value
        ("CLOUDVAMP_SWAP_IN_KIB_S", ""),
        ("CLOUDVAMP_SWAP_OUT_KIB_S", ""),
        ("CLOUDVAMP_PSI_SOME_AVG10", "1.50"),
        ("CLOUDVAMP_PSI_FULL_AVG10", "0.25"),
    ])


def test_used_is_total_minus_available_not_minus_free_plus_cache(publisher, fake_proc):
    # MemFree + Cached would call this guest 90 % free; MemAvailable says 25 %.
    fake_proc.write(mem_total_kib=1000000, mem_available_kib=250000, mem_free_kib=100000,
                    cached_kib=800000)
    figures = publisher.compute_figures(None, _sample(publisher, fake_proc), PAGE_SIZE_KIB)
    assert figures["CLOUDVAMP_MEM_USED_KIB"] == "750000"


def test_kernel_without_psi_leaves_psi_keys_empty(publisher, fake_proc):
    fake_proc.write(psi=None)
    figures = publisher.compute_figures(None, _sample(publisher, fake_proc), PAGE_SIZE_KIB)
    assert figures["CLOUDVAMP_PSI_SOME_AVG10"] == ""
    assert figures["CLOUDVAMP_PSI_FULL_AVG10"] == ""
    assert figures["CLOUDVAMP_MEM_TOTAL_KIB"] == "2097152"


def test_psi_with_only_the_some_line(publisher, fake_proc):
    # Kernels 4.20-5.12 had no "full" line for CPU; be as lenient for memory.
    fake_proc.write_file("pressure/memory", "some avg10=3.10 avg60=1.00 avg300=0.20 total=9\n")
    figures = publisher.compute_figures(None, _sample(publisher, fake_proc), PAGE_SIZE_KIB)
    assert figures["CLOUDVAMP_PSI_SOME_AVG10"] == "3.10"
    assert figures["CLOUDVAMP_PSI_FULL_AVG10"] == ""


def test_swap_rates_from_vmstat_deltas(publisher, fake_proc):
    fake_proc.write(swapped_in_pages=1000, swapped_out_pages=5000)
    first = _sample(publisher, fake_proc, monotonic_s=100.0)
    fake_proc.write(swapped_in_pages=250, swapped_out_pages=2500)  # in 10 s
    second = _sample(publisher, fake_proc, monotonic_s=110.0)
    figures = publisher.compute_figures(first, second, PAGE_SIZE_KIB)
    assert figures["CLOUDVAMP_SWAP_IN_KIB_S"] == "100.0"      # 250 pages * 4 KiB / 10 s
    assert figures["CLOUDVAMP_SWAP_OUT_KIB_S"] == "1000.0"    # 2500 * 4 / 10


def test_swap_rates_use_the_page_size(publisher, fake_proc):
    first = _sample(publisher, fake_proc, monotonic_s=0.0)
    fake_proc.write(swapped_in_pages=10)
    second = _sample(publisher, fake_proc, monotonic_s=1.0)
    figures = publisher.compute_figures(first, second, 64.0)  # a 64 KiB-page arm64 guest
    assert figures["CLOUDVAMP_SWAP_IN_KIB_S"] == "640.0"
    assert figures["CLOUDVAMP_SWAP_OUT_KIB_S"] == "0.0"


def test_counter_going_backwards_gives_no_rate(publisher, fake_proc):
    fake_proc.write(swapped_in_pages=100)
    first = _sample(publisher, fake_proc, monotonic_s=0.0)
    fake_proc.pswpin = 0
    fake_proc.write()
    second = _sample(publisher, fake_proc, monotonic_s=10.0)
    assert publisher.compute_figures(first, second, 4.0)["CLOUDVAMP_SWAP_IN_KIB_S"] == ""


def test_no_time_elapsed_gives_no_rate(publisher, fake_proc):
    first = _sample(publisher, fake_proc, monotonic_s=5.0)
    second = _sample(publisher, fake_proc, monotonic_s=5.0)
    assert publisher.compute_figures(first, second, 4.0)["CLOUDVAMP_SWAP_OUT_KIB_S"] == ""


GARBAGE_MEMINFO = [
    "",
    "\x00\x01 binary junk \xff",
    "MemTotal: lots kB\nMemAvailable: -5 kB\n",
    "MemTotal 2097152 kB\n",                     # no colon
    "MemTotal:\nMemAvailable:\n",
    "MemTotal: 1000 MB\nMemAvailable: 10 MB\n",  # not kB: refuse to guess the unit
]


@pytest.mark.parametrize("meminfo", GARBAGE_MEMINFO)
def test_garbage_meminfo_leaves_memory_keys_empty(publisher, fake_proc, meminfo):
    fake_proc.write_file("meminfo", meminfo)
    figures = publisher.compute_figures(None, _sample(publisher, fake_proc), PAGE_SIZE_KIB)
    for key in publisher.MEMORY_KIB_KEYS:
        assert figures[key] == "", key


def test_available_above_total_is_not_published(publisher, fake_proc):
    fake_proc.write_file("meminfo", "MemTotal: 1000 kB\nMemAvailable: 2000 kB\n")
    figures = publisher.compute_figures(None, _sample(publisher, fake_proc), PAGE_SIZE_KIB)
    assert figures["CLOUDVAMP_MEM_TOTAL_KIB"] == "1000"
    assert figures["CLOUDVAMP_MEM_AVAILABLE_KIB"] == ""
    assert figures["CLOUDVAMP_MEM_USED_KIB"] == ""


def test_old_kernel_without_memavailable(publisher, fake_proc):
    fake_proc.write_file("meminfo", "MemTotal: 1000 kB\nMemFree: 500 kB\nCached: 300 kB\n")
    figures = publisher.compute_figures(None, _sample(publisher, fake_proc), PAGE_SIZE_KIB)
    assert figures["CLOUDVAMP_MEM_TOTAL_KIB"] == "1000"
    assert figures["CLOUDVAMP_MEM_USED_KIB"] == ""


@pytest.mark.parametrize("psi_text", [
    "", "some avg10=abc avg60=0 total=1\n", "some avg10=250.00\n", "full\n", "garbage",
])
def test_garbage_psi_leaves_psi_keys_empty(publisher, fake_proc, psi_text):
    fake_proc.write_file("pressure/memory", psi_text)
    figures = publisher.compute_figures(None, _sample(publisher, fake_proc), PAGE_SIZE_KIB)
    assert figures["CLOUDVAMP_PSI_SOME_AVG10"] == ""


def test_empty_proc_dir_gives_all_figures_empty(publisher, tmp_path):
    sample = publisher.take_sample(str(tmp_path / "nothing-here"))
    figures = publisher.compute_figures(sample, sample, PAGE_SIZE_KIB)
    assert set(figures.values()) == {""}


def test_garbage_vmstat_gives_no_rate(publisher, fake_proc):
    fake_proc.write_file("vmstat", "pswpin many\npswpout\n")
    first = _sample(publisher, fake_proc, monotonic_s=0.0)
    second = _sample(publisher, fake_proc, monotonic_s=10.0)
    figures = publisher.compute_figures(first, second, PAGE_SIZE_KIB)
    assert figures["CLOUDVAMP_SWAP_IN_KIB_S"] == ""
    assert figures["CLOUDVAMP_SWAP_OUT_KIB_S"] == ""


def test_encode_attributes_is_onegate_template_text(publisher):
    text = publisher.encode_attributes(collections.OrderedDict([("A", "1"), ("B", "")]))
    assert text == "A=1\nB="


# --- publish_reason: the pure decision the loop and `cvem bench writes` share -------------

def _figures(publisher, **overrides):
    figures = collections.OrderedDict((key, "0") for key in publisher.FIGURE_KEYS)
    figures.update({"CLOUDVAMP_MEM_TOTAL_KIB": "2000000", "CLOUDVAMP_MEM_AVAILABLE_KIB": "1000000",
                    "CLOUDVAMP_MEM_USED_KIB": "1000000", "CLOUDVAMP_SWAP_IN_KIB_S": "0.0",
                    "CLOUDVAMP_SWAP_OUT_KIB_S": "0.0", "CLOUDVAMP_PSI_SOME_AVG10": "0.00",
                    "CLOUDVAMP_PSI_FULL_AVG10": "0.00"})
    figures.update({"CLOUDVAMP_" + key: value for key, value in overrides.items()})
    return figures


@pytest.mark.parametrize("overrides, expected", [
    ({}, None),
    ({"MEM_USED_KIB": "1065535"}, None),            # 65535 KiB < the 64 MiB deadband
    ({"MEM_USED_KIB": "1065536"}, "used moved"),
    ({"MEM_USED_KIB": "934464"}, "used moved"),     # falls count too (cvem may shrink)
    ({"SWAP_USED_KIB": "70000"}, "swap in use moved"),
    ({"SWAP_OUT_KIB_S": "30.0"}, None),             # below the 64 KiB/s threshold
    ({"SWAP_IN_KIB_S": "64.0"}, "pressure"),        # past it: at once
    ({"PSI_SOME_AVG10": "0.90"}, None),
    ({"PSI_SOME_AVG10": "1.00"}, "pressure"),
    ({"PSI_FULL_AVG10": "2.50"}, "pressure"),
    ({"PSI_FULL_AVG10": ""}, "figure appeared or disappeared"),
])
def test_publish_reason_deadband_and_pressure(publisher, overrides, expected):
    old = _figures(publisher)
    reason = publisher.publish_reason(old, None, _figures(publisher, **overrides), None, 30.0)
    assert reason == expected


def test_deadband_is_relative_to_the_guest_size(publisher):
    big = dict(MEM_TOTAL_KIB="64000000", MEM_AVAILABLE_KIB="32000000", MEM_USED_KIB="32000000")
    old = _figures(publisher, **big)
    moved_1g = _figures(publisher, **dict(big, MEM_USED_KIB="33000000"))   # < 2 % of 64 GB
    moved_2g = _figures(publisher, **dict(big, MEM_USED_KIB="33300000"))   # >= 2 %
    assert publisher.publish_reason(old, None, moved_1g, None, 30.0) is None
    assert publisher.publish_reason(old, None, moved_2g, None, 30.0) == "used moved"


def test_major_faults_past_the_threshold_go_out_at_once(publisher):
    quiet = _figures(publisher)
    assert publisher.publish_reason(quiet, 10.0, quiet, 150.0, 30.0) is None
    assert publisher.publish_reason(quiet, 10.0, quiet, 250.0, 30.0) == "pressure"
    assert publisher.publish_reason(quiet, 250.0, quiet, 300.0, 30.0) is None
    assert publisher.publish_reason(quiet, 250.0, quiet, 500.0, 30.0) == "pressure rising"


def test_pressure_rises_go_out_and_a_steady_pressure_has_its_own_heartbeat(publisher):
    rules = publisher.DEFAULT_RULES
    stalled = _figures(publisher, PSI_FULL_AVG10="5.00", PSI_SOME_AVG10="8.00")
    assert publisher.publish_reason(stalled, None, stalled, None, 30.0) is None
    worse = _figures(publisher, PSI_FULL_AVG10="6.20", PSI_SOME_AVG10="8.00")
    assert publisher.publish_reason(stalled, None, worse, None, 30.0) == "pressure rising"
    assert publisher.publish_reason(stalled, None, stalled, None, rules.pressure_heartbeat_s) \
        == "pressure heartbeat"
    assert publisher.publish_reason(stalled, None, _figures(publisher), None, 5.0) == \
        "pressure over"


def test_heartbeat(publisher):
    rules = publisher.DEFAULT_RULES
    quiet = _figures(publisher)
    assert rules.heartbeat_s == 1800.0
    assert publisher.publish_reason(None, None, quiet, None, 0.0) == "first"
    assert publisher.publish_reason(quiet, None, quiet, None, 1799.0) is None
    assert publisher.publish_reason(quiet, None, quiet, None, 1800.0) == "heartbeat"
    every_sample = rules._replace(heartbeat_s=0)
    assert publisher.publish_reason(quiet, None, quiet, None, 0.0, every_sample) == "heartbeat"


def test_fake_proc_counters_only_grow(tmp_path):
    proc = FakeProc(tmp_path).write(swapped_in_pages=5).write(swapped_in_pages=7)
    assert proc.pswpin == 12
