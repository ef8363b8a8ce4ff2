"""The host baseline that ``make bench`` prints (sim/host_baseline.py): timings per head
size. The times themselves are figures of the bench, not asserted here."""
from hdp_rtl.config import HDPConfig
from sim.host_baseline import host_times


def test_host_times_per_head_size():
    times = host_times(HDPConfig.preset("edge"), sizes=(8, 16), repeat=1)
    assert sorted(times) == [8, 16]
    assert all(t["numpy_float"] > 0 and t["golden"] > 0 for t in times.values())
