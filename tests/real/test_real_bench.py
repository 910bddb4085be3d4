"""`cvem bench real` end to end on the real tier, small: it builds its fleet, times cycles and
single calls, measures the history a resize adds, and leaves nothing behind. No figure is
judged here (speed lives in the bench's output)."""
from cvem.bench.real_oned import measure


def test_bench_real_measures_and_cleans_up(real_one):
    before = {h.findtext("NAME") for h in real_one.hosts()}
    row = measure(real_one.endpoint, real_one.auth, 4, say=lambda line: None, cycles=1)
    assert row["vms"] == 4 and len(row["cycles"]) == 2 and row["cycles"][-1]["steady"]
    assert {"read_s", "decide_s", "apply_s", "show_s", "resizes", "deferred"} <= set(
        row["cycles"][0])
    assert row["cycles"][0]["resizes"] >= 1          # idle guests: shrinks
    assert row["history"]["bytes_per_resize"] > 0
    assert {"vmpool.infoextended_ms", "recheck_ms", "one.vm.update_ms"} <= set(row["calls_ms"])
    assert len(row["load_avg"]["before"]) == 3
    assert {h.findtext("NAME") for h in real_one.hosts()} == before
    assert not [vm for vm in real_one.vms() if vm.findtext("NAME").startswith("bench-")]
