"""The host baseline that ``make bench`` prints (sim/host_baseline.py): NumPy's float
attention is the textbook formula, and the timings come out per head size. The times
themselves are figures of the bench, not asserted here."""
import math

import numpy as np

from hdp_rtl.config import HDPConfig
from sim.host_baseline import float_attention, host_times


def test_float_attention_is_softmax_of_scaled_scores_times_v():
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((3, 5, 4))
    for i in range(5):
        w = [math.exp(float(q[i] @ k[j]) / 2.0) for j in range(5)]
        want = sum(w[j] * v[j] for j in range(5)) / sum(w)
        assert np.allclose(float_attention(q, k, v)[i], want)


def test_host_times_per_head_size():
    times = host_times(HDPConfig.preset("edge"), sizes=(8, 16), repeat=1)
    assert sorted(times) == [8, 16]
    assert all(t["numpy_float"] > 0 and t["golden"] > 0 for t in times.values())
