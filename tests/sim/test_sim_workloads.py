"""Workloads: the seeded generator's scenarios and the Bitbrains reader."""

import os

import numpy as np
import pytest

from cvem.errors import ConfigError
from cvem.sim.engine import CloudConfig, place
from cvem.sim.workloads import GIB, MIB, SCENARIOS, generate, read_bitbrains

from tests.sim.traces import T0, steady, write_trace

FLOOR = 512 * MIB


# ------------------------------------------------------------------------------ generator

def test_the_generator_is_reproducible_by_seed():
    a = generate("mixed", vms=5, days=0.1, seed=3)
    b = generate("mixed", vms=5, days=0.1, seed=3)
    c = generate("mixed", vms=5, days=0.1, seed=4)
    assert np.array_equal(a.demand_kib, b.demand_kib)
    assert np.array_equal(a.nominal_kib, b.nominal_kib)
    assert np.array_equal(a.surge_starts, b.surge_starts)
    assert not np.array_equal(a.demand_kib, c.demand_kib)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_keeps_demand_between_the_os_floor_and_nominal(scenario):
    w = generate(scenario, vms=12, days=0.5, step_s=30, seed=11)
    assert w.demand_kib.shape == w.nominal_kib.shape == (12, 1440)
    assert w.vms == 12 and w.steps == 1440 and w.step_s == 30
    assert np.all(w.demand_kib >= np.minimum(FLOOR, w.nominal_kib))
    assert np.all(w.demand_kib <= w.nominal_kib)
    assert np.all(np.isin(w.nominal_kib[:, 0] / GIB, [2, 4, 8, 16]))
    assert w.info["scenario"] == scenario
    if len(w.surge_starts):
        assert w.surge_starts[:, 0].max() < 12 and w.surge_starts[:, 1].max() < 1440


def test_scenarios_have_their_shape():
    flat = generate("step", vms=8, days=1, step_s=60, seed=2)
    assert len(flat.surge_starts) > 0           # level shifts up are surges
    spiky = generate("spiky", vms=8, days=1, step_s=60, seed=2)
    assert len(spiky.surge_starts) > 0
    leak = generate("leak", vms=8, days=2, step_s=60, seed=2)
    # a leak ramps up then drops at a restart: big falls exist, rises are gentle
    d = np.diff(leak.demand_kib.astype(float), axis=1) / leak.nominal_kib[:, 1:]
    assert d.min() < -0.25 and d.max() < 0.1
    cold = generate("cold-start", vms=8, days=1, step_s=60, seed=2)
    assert np.all(cold.demand_kib[:, 0] == FLOOR)     # nothing booted yet: the OS floor only


def test_sync_surge_hits_30_pct_of_the_first_hosts_vms_at_once():
    w = generate("sync-surge", vms=40, days=0.5, step_s=10, seed=7)
    placement = place(w, CloudConfig())
    on_first = np.flatnonzero(placement.host_of_vm == 0)
    surged, at = w.surge_starts[:, 0], w.surge_starts[:, 1]
    assert np.unique(at).size == 1                           # all at the same step
    assert len(surged) == max(1, round(0.3 * on_first.size))
    assert set(surged) <= set(on_first)
    step = int(at[0])
    before = w.demand_kib[surged, step - 1] / w.nominal_kib[surged, step - 1]
    during = w.demand_kib[surged, step] / w.nominal_kib[surged, step]
    assert np.all(before < 0.5) and np.all(during >= 0.75)
    others = np.setdiff1d(np.arange(w.vms), surged)
    jump = (w.demand_kib[others, step] - w.demand_kib[others, step - 1]) / w.nominal_kib[others, 0]
    assert np.all(jump < 0.1)


@pytest.mark.parametrize("kwargs", [dict(scenario="nope"), dict(vms=0), dict(days=0),
                                    dict(days=1e-6), dict(step_s=-1)])
def test_generator_rejects_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        generate(**kwargs)


def test_head_cuts_vms_steps_and_surges():
    w = generate("spiky", vms=6, days=0.5, step_s=60, seed=1)
    h = w.head(vms=2, steps=100)
    assert h.demand_kib.shape == (2, 100) and list(h.vm_names) == ["vm0", "vm1"]
    assert np.all(h.surge_starts[:, 0] < 2) and np.all(h.surge_starts[:, 1] < 100)


# ------------------------------------------------------------------------------ Bitbrains

def test_reads_seconds_timestamps_and_kib(tmp_path):
    write_trace(tmp_path / "1.csv", steady(12, 4 * GIB, 1 * GIB))
    write_trace(tmp_path / "2.csv.gz", steady(12, 2 * GIB, 1.5 * GIB))
    w = read_bitbrains(str(tmp_path))
    assert w.vms == 2 and w.steps == 12 and w.step_s == 300
    assert w.start_s == T0
    assert list(w.vm_names) == ["1", "2"]
    assert np.all(w.demand_kib[0] == 1 * GIB) and np.all(w.nominal_kib[0] == 4 * GIB)
    assert np.all(w.demand_kib[1] == 1.5 * GIB) and np.all(w.nominal_kib[1] == 2 * GIB)
    assert w.info["missing_samples_filled"] == 0


def test_files_are_taken_in_numeric_order(tmp_path):
    for name in ("10.csv", "2.csv", "1.csv.gz"):
        write_trace(tmp_path / name, steady(3, 4 * GIB, 1 * GIB))
    (tmp_path / "README.txt").write_text("not a trace")
    assert list(read_bitbrains(str(tmp_path)).vm_names) == ["1", "2", "10"]
    assert list(read_bitbrains(str(tmp_path), vms=2).vm_names) == ["1", "2"]


def test_zero_usage_is_a_missing_sample_filled_forward(tmp_path):
    usage = [0, 0, 1.0, 2.0, 0, 0, 3.0, 0]   # GiB; 0 = the monitor missed it
    write_trace(tmp_path / "1.csv", [(T0 + 300 * i, 4 * GIB, u * GIB) for i, u in enumerate(usage)])
    w = read_bitbrains(str(tmp_path))
    # before its first real sample the VM is not there yet: no demand, never back-filled
    assert (w.demand_kib[0] / GIB).tolist() == [0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0]
    assert w.info["missing_samples_filled"] == 3
    assert w.info["present_from_step"].tolist() == [2]


def test_leading_gaps_mean_the_vm_is_not_present_yet(tmp_path):
    write_trace(tmp_path / "1.csv", steady(6, 4 * GIB, 1 * GIB))
    write_trace(tmp_path / "2.csv", steady(2, 2 * GIB, 1.5 * GIB, t0=T0 + 4 * 300))
    w = read_bitbrains(str(tmp_path))
    assert w.info["present_from_step"].tolist() == [0, 4]
    assert (w.demand_kib[1] / GIB).tolist() == [0, 0, 0, 0, 1.5, 1.5]
    assert (w.nominal_kib[1] / GIB).tolist() == [2.0] * 6   # booked at its first size
    assert w.head(vms=1).info["present_from_step"].tolist() == [0]


def test_samples_sharing_a_slot_keep_their_maximum(tmp_path):
    # two samples 100 s apart land in slot 1: the later, smaller one must not hide the peak
    write_trace(tmp_path / "1.csv", [(T0, 4 * GIB, 1 * GIB), (T0 + 250, 4 * GIB, 3 * GIB),
                                     (T0 + 350, 4 * GIB, 2 * GIB), (T0 + 600, 4 * GIB, 1 * GIB)])
    w = read_bitbrains(str(tmp_path))
    assert (w.demand_kib[0] / GIB).tolist() == [1.0, 3.0, 1.0]
    assert w.info["samples_merged"] == 1


def test_inflated_workload_is_demand_times_factor_capped_at_nominal(tmp_path):
    write_trace(tmp_path / "1.csv", [(T0, 4 * GIB, 1 * GIB), (T0 + 300, 4 * GIB, 3 * GIB)])
    w = read_bitbrains(str(tmp_path), inflate=1.5)
    assert (w.demand_kib[0] / GIB).tolist() == [1.5, 4.0]
    assert w.name.endswith("×1.5") and w.info["inflate"] == 1.5


def test_gaps_in_time_are_filled_too(tmp_path):
    write_trace(tmp_path / "1.csv", [(T0, 4 * GIB, 1 * GIB), (T0 + 900, 4 * GIB, 2 * GIB)])
    w = read_bitbrains(str(tmp_path))
    assert (w.demand_kib[0] / GIB).tolist() == [1.0, 1.0, 1.0, 2.0]


def test_provisioned_memory_may_change(tmp_path):
    prov = [4, 4, 8, 8, 0, 2]    # GiB; 0 = missing
    write_trace(tmp_path / "1.csv", [(T0 + 300 * i, p * GIB, 1 * GIB) for i, p in enumerate(prov)])
    w = read_bitbrains(str(tmp_path))
    assert (w.nominal_kib[0] / GIB).tolist() == [4, 4, 8, 8, 8, 2]


def test_usage_is_clipped_to_provisioned_and_raised_to_the_os_floor(tmp_path):
    write_trace(tmp_path / "1.csv", [(T0, 2 * GIB, 3 * GIB), (T0 + 300, 2 * GIB, 100 * MIB),
                                     (T0 + 600, 256 * MIB, 100 * MIB)])
    w = read_bitbrains(str(tmp_path))
    assert w.demand_kib[0].tolist() == [2 * GIB, FLOOR, 256 * MIB]   # floor never above nominal
    w = read_bitbrains(str(tmp_path), os_floor_kib=0)
    assert w.demand_kib[0].tolist() == [2 * GIB, 100 * MIB, 100 * MIB]


def test_damaged_rows_are_skipped_as_missing_samples(tmp_path):
    write_trace(tmp_path / "1.csv", steady(2, 4 * GIB, 1 * GIB),
                extra_lines=[f"{T0 + 600};\t2;\tgarbage", "",
                             f"{T0 + 600};\t2;\t1;\t1;\t1;\tNOPE;\t5;\t0;\t0;\t0;\t0",
                             f"{T0 + 900};\t2;\t5851.9;\t1;\t1;\t{4.0 * GIB};\t{2.0 * GIB};\t0"])
    w = read_bitbrains(str(tmp_path))
    assert (w.demand_kib[0] / GIB).tolist() == [1.0, 1.0, 1.0, 2.0]


def test_days_and_step_cut_the_run(tmp_path):
    write_trace(tmp_path / "1.csv", steady(600, 4 * GIB, 1 * GIB))   # ~2 days
    w = read_bitbrains(str(tmp_path), days=1)
    assert w.steps == 288
    w = read_bitbrains(str(tmp_path), days=1, step_s=600)
    assert w.steps == 144 and w.step_s == 600


@pytest.mark.parametrize("setup, words", [
    (lambda d: None, "no .csv"),                                          # empty folder
    (lambda d: (d / "notes.txt").write_text("x"), "no .csv"),
    (lambda d: (d / "1.csv").write_text("a,b,c\n1,2,3\n"), "not a Bitbrains CSV"),
    (lambda d: (d / "1.csv").write_text(""), "not a Bitbrains CSV"),
    (lambda d: write_trace(d / "1.csv"), "no readable samples"),          # header only
    (lambda d: write_trace(d / "1.csv", steady(3, 0, 1 * GIB)), "no provisioned memory"),
])
def test_not_a_bitbrains_folder_is_a_config_error(tmp_path, setup, words):
    setup(tmp_path)
    with pytest.raises(ConfigError, match=words):
        read_bitbrains(str(tmp_path))


def test_a_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read trace folder"):
        read_bitbrains(str(tmp_path / "nope"))


def test_a_truncated_gzip_is_a_config_error(tmp_path):
    path = write_trace(tmp_path / "1.csv.gz", steady(500, 4 * GIB, 1 * GIB))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ConfigError, match="1.csv.gz"):
        read_bitbrains(str(tmp_path))


REAL_TRACES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "traces",
                           "bitbrains-rnd-2013-8")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(REAL_TRACES), reason="shared Bitbrains traces absent")
def test_the_real_bitbrains_traces_read(tmp_path):
    w = read_bitbrains(REAL_TRACES, vms=5, days=2)
    assert w.vms == 5 and w.steps == 576 and w.step_s == 300
    assert np.all(w.demand_kib > 0) and np.all(w.demand_kib <= w.nominal_kib)
    assert np.all(np.isfinite(w.demand_kib)) and np.all(w.nominal_kib > 0)
