"""The full models: Encoder/Decoder stacks, the encoder-decoder Transformer, GPT and greedy
decoding, against ``nn.TransformerEncoder``/``nn.TransformerDecoder`` compositions and a
hand-written decoding loop.

``torch.nn`` boolean masks mean True = NOT allowed, so every mask is passed as ``~mask``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reference import attention, transformer

TOL = {"atol": 1e-10, "rtol": 1e-10}
B, S, T, D_MODEL, N_HEADS, D_FF, N_LAYERS = 2, 6, 5, 8, 2, 16, 2
SRC_VOCAB, TGT_VOCAB, MAX_LEN = 11, 13, 32


def _lengths_mask(lengths: list[int], T: int) -> torch.Tensor:
    """``[B, T]``, True on the first ``lengths[b]`` positions (real tokens)."""
    return torch.arange(T) < torch.tensor(lengths).unsqueeze(1)


def _future(T: int) -> torch.Tensor:
    """torch.nn's causal mask: True strictly above the diagonal (= NOT allowed)."""
    return torch.ones(T, T, dtype=torch.bool).triu(1)


def _pe_table(seq_len: int, d_model: int) -> torch.Tensor:
    """The paper's sinusoidal table, computed here in float64 from the formula."""
    position = torch.arange(seq_len, dtype=torch.float64).unsqueeze(1)
    freq = 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.stack([torch.sin(position / freq), torch.cos(position / freq)], dim=-1)
    # the reference builds its buffer in the default dtype (float32); .double() only widens it
    return table.reshape(seq_len, d_model).float().double()


def _tiny_transformer(randomize, dropout: float = 0.0) -> transformer.Transformer:
    model = transformer.Transformer(
        SRC_VOCAB, TGT_VOCAB, D_MODEL, N_HEADS, N_LAYERS, D_FF, dropout=dropout, max_len=MAX_LEN
    )
    return randomize(model)


def _translator() -> transformer.Transformer:
    """A small float64 Transformer with torch's default init: its greedy outputs vary by row."""
    model = transformer.Transformer(SRC_VOCAB, TGT_VOCAB, 16, 2, 2, 32, dropout=0.0, max_len=32)
    return model.double().eval()


def _tiny_gpt(randomize, dropout: float = 0.0) -> transformer.GPT:
    model = transformer.GPT(TGT_VOCAB, D_MODEL, N_HEADS, N_LAYERS, D_FF, MAX_LEN, dropout)
    return randomize(model)


# --- Encoder and Decoder stacks ------------------------------------------------------------


def test_encoder_and_decoder_hold_n_layers_in_a_module_list() -> None:
    encoder = transformer.Encoder(3, D_MODEL, N_HEADS, D_FF)
    decoder = transformer.Decoder(3, D_MODEL, N_HEADS, D_FF)
    assert isinstance(encoder.layers, nn.ModuleList) and len(encoder.layers) == 3
    assert isinstance(decoder.layers, nn.ModuleList) and len(decoder.layers) == 3
    assert {k.split(".")[0] for k in encoder.state_dict()} == {"layers"}
    assert {k.split(".")[0] for k in decoder.state_dict()} == {"layers"}


@pytest.mark.parametrize("n_layers", [0, -1])
def test_encoder_and_decoder_reject_a_non_positive_layer_count(n_layers: int) -> None:
    with pytest.raises(ValueError, match="n_layers"):
        transformer.Encoder(n_layers, D_MODEL, N_HEADS, D_FF)
    with pytest.raises(ValueError, match="n_layers"):
        transformer.Decoder(n_layers, D_MODEL, N_HEADS, D_FF)


def test_encoder_matches_torch_transformer_encoder(randomize, torch_encoder) -> None:
    encoder = randomize(transformer.Encoder(N_LAYERS, D_MODEL, N_HEADS, D_FF))
    twin = torch_encoder(encoder)
    x = torch.randn(3, S, D_MODEL, dtype=torch.float64)
    pad = _lengths_mask([6, 4, 1], S)
    torch.testing.assert_close(encoder(x), twin(x), **TOL)
    expected = twin(x, src_key_padding_mask=~pad)
    torch.testing.assert_close(encoder(x, pad.unsqueeze(1)), expected, **TOL)


def test_decoder_matches_torch_transformer_decoder(randomize, torch_decoder) -> None:
    decoder = randomize(transformer.Decoder(N_LAYERS, D_MODEL, N_HEADS, D_FF))
    twin = torch_decoder(decoder)
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    memory = torch.randn(B, S, D_MODEL, dtype=torch.float64)
    memory_pad = _lengths_mask([6, 3], S)
    torch.testing.assert_close(decoder(x, memory), twin(x, memory), **TOL)
    expected = twin(x, memory, tgt_mask=_future(T), memory_key_padding_mask=~memory_pad)
    out = decoder(x, memory, attention.causal_mask(T), memory_pad.unsqueeze(1))
    torch.testing.assert_close(out, expected, **TOL)


# --- the encoder-decoder Transformer -------------------------------------------------------


def test_transformer_has_the_contract_submodules() -> None:
    model = transformer.Transformer(SRC_VOCAB, TGT_VOCAB, D_MODEL, N_HEADS, N_LAYERS, D_FF)
    prefixes = {key.split(".")[0] for key in model.state_dict()}
    assert prefixes == {"src_embed", "tgt_embed", "encoder", "decoder", "out_proj"}
    assert model.out_proj.out_features == TGT_VOCAB and model.out_proj.bias is not None
    assert len(model.encoder.layers) == N_LAYERS and len(model.decoder.layers) == N_LAYERS


def test_transformer_forward_is_out_proj_of_decode_of_encode(randomize) -> None:
    model = _tiny_transformer(randomize)
    src = torch.randint(0, SRC_VOCAB, (B, S))
    tgt = torch.randint(0, TGT_VOCAB, (B, T))
    logits = model(src, tgt)
    assert logits.shape == (B, T, TGT_VOCAB) and logits.dtype == torch.float64
    expected = model.out_proj(model.decode(tgt, model.encode(src)))
    torch.testing.assert_close(logits, expected, **TOL)

    src_mask = _lengths_mask([6, 3], S).unsqueeze(1)
    tgt_mask = _lengths_mask([5, 2], T).unsqueeze(1)
    memory = model.encode(src, src_mask)
    expected = model.out_proj(model.decode(tgt, memory, tgt_mask, src_mask))
    torch.testing.assert_close(model(src, tgt, src_mask, tgt_mask), expected, **TOL)


def _torch_transformer(model: transformer.Transformer, torch_encoder, torch_decoder):
    """The same model assembled from torch.nn pieces and the closed-form positional table."""
    d_model = model.src_embed.d_model
    src_embed = nn.Embedding.from_pretrained(model.src_embed.embedding.weight.detach().clone())
    tgt_embed = nn.Embedding.from_pretrained(model.tgt_embed.embedding.weight.detach().clone())
    out_proj = nn.Linear(d_model, model.out_proj.out_features, dtype=torch.float64)
    out_proj.load_state_dict(model.out_proj.state_dict())
    encoder, decoder = torch_encoder(model.encoder), torch_decoder(model.decoder)

    def forward(src, tgt, src_pad=None, tgt_pad=None):  # pads: [B, len], True = real token
        src_ignore = None if src_pad is None else ~src_pad
        tgt_ignore = None if tgt_pad is None else ~tgt_pad
        x = src_embed(src) * math.sqrt(d_model) + _pe_table(src.size(1), d_model)
        memory = encoder(x, src_key_padding_mask=src_ignore)
        y = tgt_embed(tgt) * math.sqrt(d_model) + _pe_table(tgt.size(1), d_model)
        h = decoder(
            y,
            memory,
            tgt_mask=_future(tgt.size(1)),
            tgt_key_padding_mask=tgt_ignore,
            memory_key_padding_mask=src_ignore,
        )
        return out_proj(h)

    return forward


def test_transformer_matches_a_torch_nn_composition(
    randomize, torch_encoder, torch_decoder
) -> None:
    model = _tiny_transformer(randomize)
    twin = _torch_transformer(model, torch_encoder, torch_decoder)
    src = torch.randint(0, SRC_VOCAB, (B, S))
    tgt = torch.randint(0, TGT_VOCAB, (B, T))
    torch.testing.assert_close(model(src, tgt), twin(src, tgt), **TOL)


def test_transformer_matches_a_torch_nn_composition_with_padding_masks(
    randomize, torch_encoder, torch_decoder
) -> None:
    model = _tiny_transformer(randomize)
    twin = _torch_transformer(model, torch_encoder, torch_decoder)
    src = torch.randint(0, SRC_VOCAB, (3, S))
    tgt = torch.randint(0, TGT_VOCAB, (3, T))
    src_pad, tgt_pad = _lengths_mask([6, 2, 4], S), _lengths_mask([5, 5, 3], T)
    out = model(src, tgt, src_pad.unsqueeze(1), tgt_pad.unsqueeze(1))
    torch.testing.assert_close(out, twin(src, tgt, src_pad, tgt_pad), **TOL)


def test_transformer_positional_table_matches_the_closed_form() -> None:
    model = transformer.Transformer(SRC_VOCAB, TGT_VOCAB, D_MODEL, N_HEADS, 1, D_FF, max_len=50)
    assert model.pos_encoding.pe.shape == (50, D_MODEL)
    torch.testing.assert_close(model.pos_encoding.pe.double(), _pe_table(50, D_MODEL), **TOL)


@pytest.mark.parametrize("cut", [1, 3])
def test_transformer_decode_is_causal(cut: int, randomize) -> None:
    model = _tiny_transformer(randomize)
    memory = model.encode(torch.randint(0, SRC_VOCAB, (B, S)))
    tgt = torch.randint(0, TGT_VOCAB, (B, T))
    changed = tgt.clone()
    changed[:, cut:] = (tgt[:, cut:] + 1) % TGT_VOCAB
    a, b = model.decode(tgt, memory), model.decode(changed, memory)
    torch.testing.assert_close(a[:, :cut], b[:, :cut], atol=1e-12, rtol=0)
    assert not torch.allclose(a[:, cut:], b[:, cut:])
    # the forward pass inherits it, with or without a target padding mask
    src = torch.randint(0, SRC_VOCAB, (B, S))
    tgt_mask = _lengths_mask([T, T - 1], T).unsqueeze(1)
    torch.testing.assert_close(
        model(src, tgt, tgt_mask=tgt_mask)[:, :cut],
        model(src, changed, tgt_mask=tgt_mask)[:, :cut],
        atol=1e-12,
        rtol=0,
    )


def test_transformer_ignores_source_tokens_at_padded_positions(randomize) -> None:
    model = _tiny_transformer(randomize)
    src = torch.randint(1, SRC_VOCAB, (B, S))
    src[0, 4:] = 0
    src[1, 2:] = 0
    src_mask = attention.padding_mask(src, pad_id=0)
    other = src.clone()
    other[0, 4:] = torch.tensor([3, 7])
    other[1, 2:] = torch.tensor([1, 2, 9, 10])
    tgt = torch.randint(0, TGT_VOCAB, (B, T))
    torch.testing.assert_close(
        model(src, tgt, src_mask), model(other, tgt, src_mask), atol=1e-12, rtol=0
    )
    # and the mask matters: without it the padded tokens do change the logits
    assert not torch.allclose(model(src, tgt), model(other, tgt))


def test_transformer_dropout_acts_in_train_mode_only(randomize) -> None:
    model = _tiny_transformer(randomize, dropout=0.1)
    src = torch.randint(0, SRC_VOCAB, (B, S))
    tgt = torch.randint(0, TGT_VOCAB, (B, T))
    evaluated = model(src, tgt)
    assert torch.equal(model(src, tgt), evaluated)
    model.train()
    assert not torch.allclose(model(src, tgt), evaluated)


# --- GPT -----------------------------------------------------------------------------------


def test_gpt_has_the_contract_submodules() -> None:
    model = transformer.GPT(TGT_VOCAB, D_MODEL, N_HEADS, N_LAYERS, D_FF, MAX_LEN)
    prefixes = {key.split(".")[0] for key in model.state_dict()}
    assert prefixes == {"tok_embed", "pos_embed", "blocks", "norm", "lm_head"}
    assert isinstance(model.blocks, nn.ModuleList) and len(model.blocks) == N_LAYERS
    assert model.lm_head.bias is None
    assert model.pos_embed.embedding.num_embeddings == MAX_LEN


def _torch_gpt(model: transformer.GPT, torch_pre_norm_block):
    d_model = model.tok_embed.d_model
    blocks = [torch_pre_norm_block(block) for block in model.blocks]
    final_norm = nn.LayerNorm(d_model, eps=model.norm.eps, dtype=torch.float64)
    final_norm.load_state_dict(model.norm.state_dict())

    def forward(tokens, key_padding=None):  # key_padding: [B, T], True = real token
        T = tokens.size(1)
        x = F.embedding(tokens, model.tok_embed.embedding.weight) * math.sqrt(d_model)
        x = x + model.pos_embed.embedding.weight[:T]
        for block in blocks:
            x = block(x, key_padding)
        return F.linear(final_norm(x), model.lm_head.weight)

    return forward


def test_gpt_matches_a_hand_written_torch_nn_composition(randomize, torch_pre_norm_block) -> None:
    model = _tiny_gpt(randomize)
    twin = _torch_gpt(model, torch_pre_norm_block)
    tokens = torch.randint(0, TGT_VOCAB, (B, T))
    logits = model(tokens)
    assert logits.shape == (B, T, TGT_VOCAB) and logits.dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(logits, twin(tokens), **TOL)
        pad = _lengths_mask([T, 2], T)
        torch.testing.assert_close(model(tokens, pad.unsqueeze(1)), twin(tokens, pad), **TOL)


@pytest.mark.parametrize("cut", [1, 2, 4])
def test_gpt_is_causal(cut: int, randomize) -> None:
    model = _tiny_gpt(randomize)
    tokens = torch.randint(0, TGT_VOCAB, (B, T))
    changed = tokens.clone()
    changed[:, cut:] = (tokens[:, cut:] + 1) % TGT_VOCAB
    a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :cut], b[:, :cut], atol=1e-12, rtol=0)
    assert not torch.allclose(a[:, cut:], b[:, cut:])


def test_gpt_accepts_max_len_tokens_and_rejects_more(randomize) -> None:
    model = randomize(transformer.GPT(TGT_VOCAB, D_MODEL, N_HEADS, 1, D_FF, max_len=4))
    assert model(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, TGT_VOCAB)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 5, dtype=torch.long))


# --- greedy decoding -----------------------------------------------------------------------


def _greedy_by_hand(model, src, max_len, bos_id, eos_id, src_mask=None) -> torch.Tensor:
    """One row at a time: re-run encode/decode/out_proj on the whole prefix, take the argmax."""
    rows = []
    with torch.no_grad():
        for b in range(src.size(0)):
            mask = None if src_mask is None else src_mask[b : b + 1]
            memory = model.encode(src[b : b + 1], mask)
            row, finished = [bos_id], False
            while len(row) < max_len and not finished:
                prefix = torch.tensor([row])
                logits = model.out_proj(model.decode(prefix, memory, memory_mask=mask))
                row.append(int(logits[0, -1].argmax()))
                finished = row[-1] == eos_id
            rows.append(row)
    width = max(len(row) for row in rows)
    return torch.tensor([row + [eos_id] * (width - len(row)) for row in rows])


def _check_shape_and_start(out: torch.Tensor, batch: int, max_len: int, bos_id: int) -> None:
    assert out.dtype == torch.long
    assert out.dim() == 2 and out.size(0) == batch and 1 <= out.size(1) <= max_len
    assert (out[:, 0] == bos_id).all()
    assert not out.requires_grad


def test_greedy_decode_matches_a_hand_written_loop() -> None:
    model = _translator()
    src = torch.randint(0, SRC_VOCAB, (3, S))
    out = transformer.greedy_decode(model, src, max_len=7, bos_id=1, eos_id=2)
    _check_shape_and_start(out, 3, 7, 1)
    assert torch.equal(out, _greedy_by_hand(model, src, 7, 1, 2))


def test_greedy_decode_stops_rows_at_eos_and_pads_them_with_eos() -> None:
    model = _translator()
    src = torch.randint(0, SRC_VOCAB, (4, S))
    # run without an end token, then make eos a token the first row really produces early
    free_run = _greedy_by_hand(model, src, 8, bos_id=1, eos_id=-1)
    eos_id = int(free_run[0, 2])
    out = transformer.greedy_decode(model, src, max_len=8, bos_id=1, eos_id=eos_id)
    _check_shape_and_start(out, 4, 8, 1)
    assert torch.equal(out, _greedy_by_hand(model, src, 8, 1, eos_id))
    finish = []
    for row in out.tolist():
        first = row.index(eos_id, 1) if eos_id in row[1:] else len(row)
        assert row[first:] == [eos_id] * (len(row) - first), "a finished row stays eos"
        finish.append(first)
    assert finish[0] <= 2 and len(set(finish)) > 1, "rows should finish at different steps"


def test_greedy_decode_stops_after_one_step_when_eos_dominates() -> None:
    model = _translator()
    with torch.no_grad():
        model.out_proj.bias[4] = 1e3  # eos = 4 is the argmax everywhere
    src = torch.randint(0, SRC_VOCAB, (3, S))
    out = transformer.greedy_decode(model, src, max_len=10, bos_id=0, eos_id=4)
    assert torch.equal(out, torch.tensor([[0, 4]] * 3))


@pytest.mark.parametrize("max_len", [1, 2, 5])
def test_greedy_decode_stops_at_max_len(max_len: int) -> None:
    model = _translator()
    with torch.no_grad():
        model.out_proj.bias[4] = -1e3  # eos = 4 is never produced
    src = torch.randint(0, SRC_VOCAB, (2, S))
    out = transformer.greedy_decode(model, src, max_len=max_len, bos_id=3, eos_id=4)
    _check_shape_and_start(out, 2, max_len, 3)
    assert out.shape == (2, max_len)
    assert torch.equal(out, _greedy_by_hand(model, src, max_len, 3, 4))


def test_greedy_decode_with_a_source_mask_equals_decoding_the_unpadded_source() -> None:
    model = _translator()
    src = torch.randint(1, SRC_VOCAB, (3, S))
    src[1, 3:] = 0
    src[2, 5:] = 0
    src_mask = attention.padding_mask(src, pad_id=0)
    out = transformer.greedy_decode(model, src, max_len=6, bos_id=1, eos_id=2, src_mask=src_mask)
    assert torch.equal(out, _greedy_by_hand(model, src, 6, 1, 2, src_mask))
    alone = transformer.greedy_decode(model, src[1:2, :3], max_len=6, bos_id=1, eos_id=2)
    assert torch.equal(out[1:2, : alone.size(1)], alone)


class _ScriptedTranslator(nn.Module):
    """A stand-in model whose decoder makes position ``t`` predict ``script[:, t]``.

    It has the ``encode``/``decode``/``out_proj`` interface ``greedy_decode`` relies on, so the
    stopping rule can be checked against sequences chosen by hand.
    """

    def __init__(self, script: torch.Tensor, vocab_size: int):
        super().__init__()
        self.script, self.vocab_size = script, vocab_size
        self.out_proj = nn.Identity()

    def encode(self, src, src_mask=None):
        return src.unsqueeze(-1).double()

    def decode(self, tgt, memory, tgt_mask=None, memory_mask=None):
        return F.one_hot(self.script[:, : tgt.size(1)], self.vocab_size).double()


def test_greedy_decode_follows_a_scripted_model_and_pads_finished_rows() -> None:
    eos = 9
    script = torch.tensor(
        [
            [5, eos, 6, 7, 8, 6],  # finishes at step 2
            [4, 4, 3, eos, 1, 1],  # finishes at step 4
            [eos, 3, 3, 3, 3, 3],  # finishes at once
        ]
    )
    model = _ScriptedTranslator(script, vocab_size=10)
    out = transformer.greedy_decode(model, torch.zeros(3, 2, dtype=torch.long), 10, 0, eos)
    expected = torch.tensor(
        [
            [0, 5, eos, eos, eos],
            [0, 4, 4, 3, eos],
            [0, eos, eos, eos, eos],
        ]
    )
    assert torch.equal(out, expected)
    # a row that never produces eos runs to max_len
    out = transformer.greedy_decode(model, torch.zeros(3, 2, dtype=torch.long), 4, 0, 8)
    assert torch.equal(out, torch.cat([torch.zeros(3, 1, dtype=torch.long), script[:, :3]], 1))


def test_greedy_decode_rejects_a_non_positive_max_len() -> None:
    model = _translator()
    with pytest.raises(ValueError, match="max_len"):
        transformer.greedy_decode(model, torch.zeros(1, 3, dtype=torch.long), 0, 1, 2)
