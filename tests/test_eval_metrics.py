"""Fidelity metrics of the MiniLM evaluation (NumPy only)."""
import numpy as np
import pytest

from hdp_rtl.eval.metrics import (cosines, fidelity, nn_agreement, pair_similarities,
                                  rankdata, spearman)


def test_rankdata_averages_ties():
    np.testing.assert_array_equal(rankdata([3, 1, 2, 2, 5]), [4, 1, 2.5, 2.5, 5])
    np.testing.assert_array_equal(rankdata([7, 7, 7]), [2, 2, 2])


def test_spearman_is_rank_based():
    x = np.arange(10.0)
    assert spearman(x, x ** 3) == pytest.approx(1.0)
    assert spearman(x, -np.exp(x)) == pytest.approx(-1.0)
    assert np.isnan(spearman(x, np.ones(10)))
    # one swapped pair of ten: 1 - 6*2/(10*99)
    y = x.copy()
    y[[3, 4]] = y[[4, 3]]
    assert spearman(x, y) == pytest.approx(1 - 12 / 990)


def test_cosines_and_pairs():
    a = np.array([[1.0, 0, 0], [0, 2, 0], [1, 1, 0]])
    np.testing.assert_allclose(cosines(a, 3 * a), 1.0)
    np.testing.assert_allclose(cosines(a, -a), -1.0)
    sims = pair_similarities(a)
    np.testing.assert_allclose(sims, [0.0, 1 / np.sqrt(2), 1 / np.sqrt(2)])
    np.testing.assert_allclose(pair_similarities(a, [(0, 2)]), [1 / np.sqrt(2)])


def test_nearest_neighbour_agreement():
    ref = np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    assert nn_agreement(ref, ref) == 1.0
    swapped = ref[[0, 2, 1, 3]]        # rows 1 and 2 change places
    assert nn_agreement(ref, swapped) == 0.0


def test_fidelity_of_identical_embeddings():
    rng = np.random.default_rng(1)
    e = rng.standard_normal((6, 16))
    f = fidelity(e, e)
    assert f["cos_mean"] == pytest.approx(1.0) and f["cos_min"] == pytest.approx(1.0)
    assert f["spearman"] == pytest.approx(1.0) and f["nn_agree"] == 1.0
    g = fidelity(e, e + 0.3 * rng.standard_normal(e.shape))
    assert g["cos_min"] <= g["cos_mean"] < 1.0
