"""1.2-1.4: softmax, masks, scaled dot-product attention, one head and many heads.

Compared with ``torch.softmax``, ``F.scaled_dot_product_attention`` (boolean ``attn_mask``:
True = may attend, as in our contract) and ``nn.MultiheadAttention`` (boolean masks:
True = NOT allowed, hence the ``~``).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reference import attention

TOL = {"atol": 1e-10, "rtol": 1e-10}
B, T, D_MODEL, N_HEADS = 2, 5, 8, 2


def _pad_mask(lengths: list[int], T: int) -> torch.Tensor:
    """``[B, 1, T]``, True on the first ``lengths[b]`` positions of row b."""
    return (torch.arange(T) < torch.tensor(lengths).unsqueeze(1)).unsqueeze(1)


# --- softmax -------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [-1, -2, 0, 1, 2])
def test_softmax_matches_torch_softmax_along_any_dim(dim: int) -> None:
    x = torch.randn(3, 4, 5, dtype=torch.float64) * 3
    before = x.clone()
    torch.testing.assert_close(attention.softmax(x, dim=dim), torch.softmax(x, dim=dim), **TOL)
    assert torch.equal(x, before), "the input must not be modified in place"


def test_softmax_defaults_to_the_last_dim() -> None:
    x = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(attention.softmax(x), torch.softmax(x, dim=-1), **TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_does_not_overflow_on_huge_inputs(dtype: torch.dtype) -> None:
    x = torch.tensor([[1e4, 1e4 - 1.0, -1e4], [1e4, 1e4, 1e4], [-1e4, 0.0, 1e4]], dtype=dtype)
    out = attention.softmax(x)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.softmax(x, dim=-1))


def test_softmax_gives_exactly_zero_to_minus_inf_entries() -> None:
    x = torch.randn(4, 6, dtype=torch.float64)
    x[:, 2] = float("-inf")
    x[1, 4:] = float("-inf")
    out = attention.softmax(x)
    assert (out[:, 2] == 0).all() and (out[1, 4:] == 0).all()
    torch.testing.assert_close(out, torch.softmax(x, dim=-1), **TOL)


def test_softmax_rows_are_probability_distributions() -> None:
    out = attention.softmax(torch.randn(5, 7, 9, dtype=torch.float64) * 10)
    assert (out >= 0).all()
    torch.testing.assert_close(out.sum(-1), torch.ones(5, 7, dtype=torch.float64), **TOL)


def test_softmax_is_shift_invariant() -> None:
    x = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(attention.softmax(x + 123.0), attention.softmax(x), **TOL)


# --- masks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seq_len", [0, 1, 2, 6])
def test_causal_mask_is_the_lower_triangle_including_the_diagonal(seq_len: int) -> None:
    mask = attention.causal_mask(seq_len)
    assert mask.dtype == torch.bool
    assert mask.shape == (seq_len, seq_len)
    for i in range(seq_len):
        for j in range(seq_len):
            assert bool(mask[i, j]) == (j <= i), f"position {i} seeing {j}"


def test_causal_mask_blocks_future_tokens() -> None:
    mask = attention.causal_mask(5)
    assert not mask.triu(1).any()
    assert mask.tril().sum() == 15


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), "meta"])
def test_causal_mask_is_created_on_the_requested_device(device) -> None:
    mask = attention.causal_mask(4, device=device)
    assert mask.device.type == torch.device(device).type
    assert mask.dtype == torch.bool


def test_padding_mask_marks_real_tokens_with_a_broadcastable_query_dim() -> None:
    tokens = torch.tensor([[5, 3, 0, 0], [0, 1, 2, 0], [7, 8, 9, 4]])
    mask = attention.padding_mask(tokens, pad_id=0)
    assert mask.dtype == torch.bool
    assert mask.shape == (3, 1, 4)
    assert torch.equal(mask[:, 0], tokens != 0)
    assert torch.equal(attention.padding_mask(tokens, pad_id=4)[:, 0], tokens != 4)


# --- scaled dot-product attention ----------------------------------------------------------


def _manual_weights(q, k, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize("lead", [(), (3,), (2, 3)], ids=["2d", "3d", "4d"])
def test_sdpa_matches_torch_without_a_mask(lead: tuple[int, ...]) -> None:
    q = torch.randn(*lead, 4, 6, dtype=torch.float64)
    k = torch.randn(*lead, 7, 6, dtype=torch.float64)
    v = torch.randn(*lead, 7, 3, dtype=torch.float64)
    out, weights = attention.scaled_dot_product_attention(q, k, v)
    assert out.shape == (*lead, 4, 3) and weights.shape == (*lead, 4, 7)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), **TOL)
    torch.testing.assert_close(weights, _manual_weights(q, k), **TOL)
    torch.testing.assert_close(out, _manual_weights(q, k) @ v, **TOL)


def test_sdpa_matches_torch_with_a_causal_mask() -> None:
    q, k, v = (torch.randn(B, N_HEADS, T, 4, dtype=torch.float64) for _ in range(3))
    mask = attention.causal_mask(T)
    out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected, **TOL)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **TOL)
    assert (weights.triu(1) == 0).all(), "no weight on future keys"
    torch.testing.assert_close(weights, _manual_weights(q, k, mask), **TOL)


def test_sdpa_matches_torch_with_a_padding_mask_over_batched_queries() -> None:
    q = torch.randn(3, 4, 5, dtype=torch.float64)
    k = torch.randn(3, 6, 5, dtype=torch.float64)
    v = torch.randn(3, 6, 2, dtype=torch.float64)
    mask = _pad_mask([6, 2, 4], 6)  # (B, 1, T_k)
    out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL)
    torch.testing.assert_close(weights, _manual_weights(q, k, mask), **TOL)
    assert (weights[1, :, 2:] == 0).all() and (weights[2, :, 4:] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, dtype=torch.float64), **TOL)


def test_sdpa_matches_torch_with_a_padding_and_causal_mask_over_heads() -> None:
    q, k, v = (torch.randn(B, N_HEADS, T, 4, dtype=torch.float64) for _ in range(3))
    mask = attention.causal_mask(T) & _pad_mask([5, 3], T).unsqueeze(1)  # (B, 1, T, T)
    out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL)
    torch.testing.assert_close(weights, _manual_weights(q, k, mask), **TOL)


def test_sdpa_keeps_float32_inputs_float32() -> None:
    q, k, v = (torch.randn(2, 3, 4) for _ in range(3))
    out, weights = attention.scaled_dot_product_attention(q, k, v)
    assert out.dtype == torch.float32 and weights.dtype == torch.float32
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))


def test_sdpa_does_not_modify_its_inputs() -> None:
    q, k, v = (torch.randn(2, 3, 4, dtype=torch.float64) for _ in range(3))
    copies = [t.clone() for t in (q, k, v)]
    attention.scaled_dot_product_attention(q, k, v, attention.causal_mask(3))
    assert all(torch.equal(a, b) for a, b in zip((q, k, v), copies, strict=True))


# --- one head ------------------------------------------------------------------------------


def test_attention_head_has_three_bias_free_projections() -> None:
    head = attention.AttentionHead(8, 3)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == {
        "q_proj.weight": (3, 8),
        "k_proj.weight": (3, 8),
        "v_proj.weight": (3, 8),
    }


def test_attention_head_matches_a_manual_self_attention(randomize) -> None:
    head = randomize(attention.AttentionHead(D_MODEL, 3))
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    mask = attention.causal_mask(T)
    q, k, v = x @ head.q_proj.weight.T, x @ head.k_proj.weight.T, x @ head.v_proj.weight.T
    out = head(x, mask=mask)
    assert out.shape == (B, T, 3)
    torch.testing.assert_close(out, _manual_weights(q, k, mask) @ v, **TOL)
    torch.testing.assert_close(head(x), _manual_weights(q, k) @ v, **TOL)
    torch.testing.assert_close(head(x, x), head(x), **TOL)


def test_attention_head_takes_keys_and_values_from_the_context(randomize) -> None:
    head = randomize(attention.AttentionHead(D_MODEL, 4))
    x = torch.randn(B, 3, D_MODEL, dtype=torch.float64)
    context = torch.randn(B, 6, D_MODEL, dtype=torch.float64)
    mask = _pad_mask([6, 4], 6)
    q = x @ head.q_proj.weight.T
    k, v = context @ head.k_proj.weight.T, context @ head.v_proj.weight.T
    out = head(x, context=context, mask=mask)
    assert out.shape == (B, 3, 4)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL)


# --- many heads ----------------------------------------------------------------------------


def test_multihead_attention_has_the_contract_state_dict() -> None:
    mha = attention.MultiHeadAttention(D_MODEL, N_HEADS)
    shapes = {k: tuple(v.shape) for k, v in mha.state_dict().items()}
    names = ("q_proj", "k_proj", "v_proj", "out_proj")
    assert shapes == {
        **{f"{n}.weight": (D_MODEL, D_MODEL) for n in names},
        **{f"{n}.bias": (D_MODEL,) for n in names},
    }
    no_bias = attention.MultiHeadAttention(D_MODEL, N_HEADS, bias=False)
    assert sorted(no_bias.state_dict()) == sorted(f"{n}.weight" for n in names)


@pytest.mark.parametrize(("d_model", "n_heads"), [(10, 3), (8, 3), (6, 4)])
def test_multihead_attention_rejects_d_model_not_divisible_by_n_heads(d_model, n_heads) -> None:
    with pytest.raises(ValueError, match="d_model"):
        attention.MultiHeadAttention(d_model, n_heads)


@pytest.mark.parametrize("n_heads", [1, 2, 4, 8])
def test_multihead_attention_matches_torch_multihead_without_a_mask(
    n_heads, randomize, torch_mha
) -> None:
    mha = randomize(attention.MultiHeadAttention(D_MODEL, n_heads))
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    expected, _ = torch_mha(mha)(x, x, x, need_weights=False)
    out = mha(x, x, x)
    assert out.shape == (B, T, D_MODEL) and out.dtype == torch.float64
    torch.testing.assert_close(out, expected, **TOL)


def test_multihead_attention_matches_torch_multihead_with_causal_mask(randomize, torch_mha) -> None:
    mha = randomize(attention.MultiHeadAttention(D_MODEL, N_HEADS))
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    mask = attention.causal_mask(T)  # (T, T)
    expected, _ = torch_mha(mha)(x, x, x, attn_mask=~mask, need_weights=False)
    torch.testing.assert_close(mha(x, x, x, mask), expected, **TOL)


def test_multihead_attention_matches_torch_multihead_with_padding_mask(
    randomize, torch_mha
) -> None:
    mha = randomize(attention.MultiHeadAttention(D_MODEL, N_HEADS))
    x = torch.randn(3, T, D_MODEL, dtype=torch.float64)
    mask = _pad_mask([5, 2, 3], T)  # (B, 1, T)
    expected, _ = torch_mha(mha)(x, x, x, key_padding_mask=~mask[:, 0], need_weights=False)
    torch.testing.assert_close(mha(x, x, x, mask), expected, **TOL)


def test_multihead_attention_matches_torch_multihead_with_causal_and_padding_mask(
    randomize, torch_mha
) -> None:
    mha = randomize(attention.MultiHeadAttention(D_MODEL, N_HEADS))
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    causal, pad = attention.causal_mask(T), _pad_mask([4, 2], T)
    expected, _ = torch_mha(mha)(
        x, x, x, attn_mask=~causal, key_padding_mask=~pad[:, 0], need_weights=False
    )
    torch.testing.assert_close(mha(x, x, x, causal & pad), expected, **TOL)


def test_multihead_attention_matches_torch_multihead_for_cross_attention(
    randomize, torch_mha
) -> None:
    mha = randomize(attention.MultiHeadAttention(D_MODEL, N_HEADS))
    query = torch.randn(B, 3, D_MODEL, dtype=torch.float64)
    key = torch.randn(B, 6, D_MODEL, dtype=torch.float64)
    value = torch.randn(B, 6, D_MODEL, dtype=torch.float64)
    mask = _pad_mask([6, 5], 6)
    expected, _ = torch_mha(mha)(
        query, key, value, key_padding_mask=~mask[:, 0], need_weights=False
    )
    out = mha(query, key, value, mask)
    assert out.shape == (B, 3, D_MODEL)
    torch.testing.assert_close(out, expected, **TOL)


def test_multihead_attention_without_bias_matches_torch_multihead(randomize, torch_mha) -> None:
    mha = randomize(attention.MultiHeadAttention(D_MODEL, N_HEADS, bias=False))
    twin = torch_mha(mha)
    assert twin.in_proj_bias is None and twin.out_proj.bias is None
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    mask = attention.causal_mask(T)
    expected, _ = twin(x, x, x, attn_mask=~mask, need_weights=False)
    torch.testing.assert_close(mha(x, x, x, mask), expected, **TOL)


def test_multihead_attention_head_h_uses_its_own_slice_of_features(randomize) -> None:
    mha = randomize(attention.MultiHeadAttention(D_MODEL, N_HEADS, bias=False))
    d_head = D_MODEL // N_HEADS
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    mask = attention.causal_mask(T)
    heads = []
    for h in range(N_HEADS):
        head = attention.AttentionHead(D_MODEL, d_head).double()
        rows = slice(h * d_head, (h + 1) * d_head)
        with torch.no_grad():
            head.q_proj.weight.copy_(mha.q_proj.weight[rows])
            head.k_proj.weight.copy_(mha.k_proj.weight[rows])
            head.v_proj.weight.copy_(mha.v_proj.weight[rows])
        heads.append(head(x, mask=mask))
    expected = mha.out_proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(mha(x, x, x, mask), expected, **TOL)


def test_multihead_attention_float32_matches_torch_and_stays_float32(torch_mha) -> None:
    mha = attention.MultiHeadAttention(D_MODEL, N_HEADS).eval()
    twin = torch_mha(mha).float()
    x = torch.randn(B, T, D_MODEL)
    out = mha(x, x, x, attention.causal_mask(T))
    assert out.dtype == torch.float32
    expected, _ = twin(x, x, x, attn_mask=~attention.causal_mask(T), need_weights=False)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_multihead_attention_does_not_modify_its_inputs(randomize) -> None:
    mha = randomize(attention.MultiHeadAttention(D_MODEL, N_HEADS))
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    mask = attention.causal_mask(T)
    before, mask_before = x.clone(), mask.clone()
    mha(x, x, x, mask)
    assert torch.equal(x, before) and torch.equal(mask, mask_before)


def test_multihead_attention_dropout_applies_to_the_attention_weights(randomize) -> None:
    mha = randomize(attention.MultiHeadAttention(D_MODEL, N_HEADS, dropout=0.5))
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    mask = attention.causal_mask(T)
    evaluated = mha(x, x, x, mask)

    # the same computation by hand, dropping attention weights with the same random draw
    d_head = D_MODEL // N_HEADS

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, d_model) -> (B, nh, T, hs)
        return t.view(B, T, N_HEADS, d_head).transpose(1, 2)

    q, k, v = split(mha.q_proj(x)), split(mha.k_proj(x)), split(mha.v_proj(x))
    weights = _manual_weights(q, k, mask)
    torch.testing.assert_close(
        evaluated, mha.out_proj((weights @ v).transpose(1, 2).reshape(B, T, D_MODEL)), **TOL
    )

    mha.train()
    torch.manual_seed(7)
    trained = mha(x, x, x, mask)
    torch.manual_seed(7)
    dropped = F.dropout(weights, 0.5, training=True)
    expected = mha.out_proj((dropped @ v).transpose(1, 2).reshape(B, T, D_MODEL))
    assert not torch.allclose(trained, evaluated)
    torch.testing.assert_close(trained, expected, **TOL)

    mha.eval()
    torch.testing.assert_close(mha(x, x, x, mask), evaluated, **TOL)
