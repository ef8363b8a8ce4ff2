"""The host baseline that ``make bench`` prints (sim/host_baseline.py): timings per head
size. The times themselves are figures of the bench, not asserted here."""
from hdp_rtl.config import HDPConfig
from sim.host_baseline import host_times


def test_host_times_per_head_size():
    times = host_times(HDPConfig.preset("edge"), sizes=(8, 16), repeat=1)
    assert sorted(times) == [8, 16]
    assert all(t["numpy_float"] > 0 and t["golden"] > 0 for t in times.values())


def test_host_table_times_dense_and_pruned_at_the_clock():
    """The bench's host table: each head's dense and pruned cycles turned into time at
    the clock given (a post-route Fmax, so labelled), next to the host's times."""
    from sim.bench import host_lines
    rows = [{"workload": "random n=128", "mode": "dense", "total": 50_000, "keep": 1.0},
            {"workload": "random n=128", "mode": "pruned", "total": 25_000, "keep": 0.4}]
    host = {128: {"numpy_float": 0.4e-3, "golden": 20e-3},
            256: {"numpy_float": 1.9e-3, "golden": 50e-3}}
    lines = host_lines(rows, host, 125.0, measured=True)
    assert "post-route Fmax, 125.00 MHz" in lines[0]
    assert "| 128 x d | 50000 | 0.400 ms | 25000 (40%) | 0.200 ms | 0.400 ms | 20.0 ms |" in lines
    assert "| 256 x d | - | - | - | - | 1.900 ms | 50.0 ms |" in lines
    assert "100 MHz target" in host_lines(rows, host)[0]
