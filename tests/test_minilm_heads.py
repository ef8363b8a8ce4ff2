"""Real all-MiniLM-L6-v2 heads (tests/data/minilm_heads.npz) through the golden model,
bit for bit, with either matrix product. Needs only NumPy and the repository (no eval
extras); regenerate the vectors with scripts/export_minilm_heads.py."""
import numpy as np
import pytest

import golden
from golden.vectors import load_minilm_heads

HEADS = load_minilm_heads()


def test_the_vectors_cover_the_registers():
    assert len(HEADS) >= 4
    regs = [h.regs for h in HEADS]
    assert {r.block_rule for r in regs if r.block_prune_enable} == {0, 1}
    assert any(not r.block_prune_enable for r in regs)
    assert any(not r.approx_enable for r in regs)
    assert any(r.head_prune_enable for r in regs)
    for h in HEADS:
        assert h.config.head_dim == 32 and h.regs.seq_len <= 64 <= h.config.seq_max
        assert h.q.shape == h.k.shape == h.v.shape == (h.regs.seq_len, 32)
        assert h.out.shape == (h.regs.seq_len, h.config.head_dim)
        lo, hi = -(1 << (h.config.data_bits - 1)), (1 << (h.config.data_bits - 1)) - 1
        assert all(lo <= x.min() and x.max() <= hi for x in (h.q, h.k, h.v))


@pytest.mark.parametrize("matmul", [golden.int64_matmul, golden.float64_matmul],
                         ids=["int64", "float64"])
@pytest.mark.parametrize("head", HEADS, ids=[h.name for h in HEADS])
def test_golden_out_is_bit_exact(head, matmul):
    config, regs, q, k, v, out = head
    res = golden.attention_head(q, k, v, config, regs, matmul=matmul)
    assert res.out.dtype == np.int64
    np.testing.assert_array_equal(res.out, out)
    if regs.head_prune_enable and res.head_pruned:
        assert not out.any()
    elif regs.block_prune_enable:
        assert res.pairs_kept < res.pairs_valid          # a real head, really pruned
