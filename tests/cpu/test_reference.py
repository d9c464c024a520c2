"""The reference and the error rule the GPU tests rely on: they must be right, and must fail
on the kinds of bug they exist to catch."""
import math

import pytest
import torch

from flashgen.reference import NumericsError, attention_reference, check_against_reference


def naive_attention(q, k, v, causal, scale):
    b, sq, h, d = q.shape
    sk, hk = k.shape[1], k.shape[2]
    out = torch.zeros(b, sq, h, d, dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            kh = hi // (h // hk)
            for i in range(sq):
                keys = [j for j in range(sk) if not causal or j <= i + sk - sq]
                if not keys:
                    continue
                s = torch.tensor([float(q[bi, i, hi].double() @ k[bi, j, kh].double()) * scale for j in keys])
                p = torch.softmax(s, dim=0)
                out[bi, i, hi] = sum(p[n] * v[bi, j, kh].double() for n, j in enumerate(keys))
    return out


@pytest.mark.parametrize("sq,sk", [(5, 9), (9, 5), (7, 7)])
@pytest.mark.parametrize("causal", [False, True])
def test_reference_matches_naive_loops_with_gqa_and_bottom_right_causal(sq, sk, causal):
    q = torch.randn(2, sq, 4, 8)
    k, v = torch.randn(2, sk, 2, 8), torch.randn(2, sk, 2, 8)
    out, lse = attention_reference(q, k, v, causal, 0.5)
    torch.testing.assert_close(out.double(), naive_attention(q, k, v, causal, 0.5), atol=1e-5, rtol=1e-5)
    if causal and sq > sk:  # the first sq - sk queries see no key
        assert (out[:, : sq - sk] == 0).all() and (lse[:, :, : sq - sk] == math.inf).all()
    assert torch.isfinite(lse[:, :, max(0, sq - sk):]).all()


def test_rule_accepts_the_reference_and_rejects_a_small_wrong_patch():
    q, k, v = (torch.randn(1, 64, 2, 32, dtype=torch.bfloat16) for _ in range(3))
    ref, _ = attention_reference(q, k, v, False)
    same, _ = attention_reference(q, k, v, False, upcast=False)
    check_against_reference("out", same, ref, same)  # the baseline itself passes
    wrong = same.clone()
    wrong[0, 10:12, 1, :4] += 0.5  # a few wrong elements, like one bad tile
    with pytest.raises(NumericsError, match=r"out: max abs error .* 0\.20% of elements mismatched; worst at \(0, 1"):
        check_against_reference("out", wrong, ref, same)


def test_rule_rejects_nan_and_names_it():
    q, k, v = (torch.randn(1, 8, 1, 16, dtype=torch.float16) for _ in range(3))
    ref, _ = attention_reference(q, k, v, False)
    bad = ref.clone()
    bad[0, 3, 0, 5] = float("nan")
    with pytest.raises(NumericsError, match=r"1 of 128 elements are NaN/Inf \(first at \(0, 3, 0, 5\)\)"):
        check_against_reference("out", bad, ref, ref)


def test_rule_catches_a_top_left_causal_mask():
    q, k, v = torch.randn(1, 7, 1, 16), torch.randn(1, 13, 1, 16), torch.randn(1, 13, 1, 16)
    ref, _ = attention_reference(q, k, v, causal=True)
    top_left = attention_reference(q, k[:, :7], v[:, :7], causal=True)[0]  # keys past the first 7 dropped
    with pytest.raises(NumericsError):
        check_against_reference("out", top_left, ref, ref)
