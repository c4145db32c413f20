"""``llm_grade.oracles`` (the torch.nn implementation) is interchangeable with ``reference/``.

Every graded name of API.md: same signatures, same state_dict keys and shapes, the same
``ValueError`` conditions, and the same outputs in ``eval()`` after loading the reference's
random weights with ``strict=True`` (float64: 1e-10; float32: loose), masks included.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # `reference/` is not an installed package
    sys.path.insert(0, str(_ROOT))

from llm_grade.components import COMPONENTS  # noqa: E402
from llm_grade.engine.rubric import DEFAULT_FORBIDDEN  # noqa: E402
from llm_grade.oracles import attention as orc_attention  # noqa: E402
from llm_grade.oracles import embeddings as orc_embeddings  # noqa: E402
from llm_grade.oracles import environment as orc_environment  # noqa: E402
from llm_grade.oracles import feedforward as orc_feedforward  # noqa: E402
from llm_grade.oracles import normalization as orc_normalization  # noqa: E402
from llm_grade.oracles import transformer as orc_transformer  # noqa: E402
from llm_grade.policy.forbidden import scan_source  # noqa: E402
from reference import attention as ref_attention  # noqa: E402
from reference import embeddings as ref_embeddings  # noqa: E402
from reference import environment as ref_environment  # noqa: E402
from reference import feedforward as ref_feedforward  # noqa: E402
from reference import transformer as ref_transformer  # noqa: E402

DTYPES = [torch.float64, torch.float32]
TOL = {torch.float64: {"atol": 1e-10, "rtol": 1e-10}, torch.float32: {"atol": 1e-4, "rtol": 1e-4}}
B, T, S = 2, 5, 4
MASK_KINDS = ["none", "causal", "padding", "causal&padding", "random"]


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def _both(name: str):
    """``(reference object, oracle object)`` named ``name``."""
    module = COMPONENTS[name]
    ref = importlib.import_module(f"reference.{module}")
    orc = importlib.import_module(f"llm_grade.oracles.{module}")
    return getattr(ref, name), getattr(orc, name)


@torch.no_grad()
def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Generic weights: norm gains ``1 + 0.5 N(0, 1)``, everything else ``N(0, 0.5^2)``."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
        p.copy_(1.0 + 0.5 * noise if name.endswith("weight") and p.dim() == 1 else 0.5 * noise)
    return module


def _pair(name: str, *args, dtype: torch.dtype = torch.float64, **kwargs):
    """Reference with random weights, oracle with the same weights (strict), both eval."""
    ref_cls, orc_cls = _both(name)
    ref = _randomize(ref_cls(*args, **kwargs)).to(dtype).eval()
    orc = orc_cls(*args, **kwargs).to(dtype).eval()
    orc.load_state_dict(ref.state_dict(), strict=True)
    return ref, orc


def _randn(*shape, dtype: torch.dtype = torch.float64, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, dtype=torch.float64) * scale).to(dtype)


def _mask(kind: str, T_q: int = T, T_k: int = T) -> torch.Tensor | None:
    """A boolean mask (True = may attend) with at least one allowed key per query row."""
    causal = torch.ones(T_q, T_k, dtype=torch.bool).tril()
    padding = (torch.arange(T_k) < torch.tensor([T_k, 2]).unsqueeze(1)).unsqueeze(1)  # [B,1,T_k]
    if kind == "none":
        return None
    if kind == "causal":
        return causal
    if kind == "padding":
        return padding
    if kind == "causal&padding":
        return causal & padding
    mask = torch.rand(B, T_q, T_k) < 0.6
    mask[:, :, 0] = True  # key 0 stays allowed, also under a causal mask
    return mask


def _check_same(ref_out: torch.Tensor, orc_out: torch.Tensor, dtype: torch.dtype) -> None:
    assert orc_out.dtype == ref_out.dtype == dtype
    assert orc_out.shape == ref_out.shape
    torch.testing.assert_close(orc_out, ref_out, **TOL[dtype])


def _run_both(ref, orc, *inputs, dtype: torch.dtype = torch.float64, **kwargs) -> None:
    """Same output from both, and the inputs are not modified in place."""
    before = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
    ref_out = ref(*inputs, **kwargs)
    orc_out = orc(*inputs, **kwargs)
    for a, b in zip(before, inputs, strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), "an input was modified in place"
    _check_same(ref_out, orc_out, dtype)


# --- the contract: names, signatures, state_dict ------------------------------------------


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_every_name_has_the_reference_signature(name: str) -> None:
    ref, orc = _both(name)
    if inspect.isclass(ref):
        assert inspect.isclass(orc) and issubclass(orc, nn.Module)
        for method in ("__init__", "forward", "encode", "decode"):
            if hasattr(ref, method):
                ref_sig = inspect.signature(getattr(ref, method))
                assert inspect.signature(getattr(orc, method)) == ref_sig, method
    else:
        assert inspect.signature(orc) == inspect.signature(ref)


STATE_CASES = [
    ("TokenEmbedding", (11, 8)),
    ("SinusoidalPositionalEncoding", (8, 16)),
    ("LearnedPositionalEmbedding", (16, 8)),
    ("AttentionHead", (8, 3)),
    ("MultiHeadAttention", (8, 2)),
    ("MultiHeadAttention", (8, 2, 0.0, False)),
    ("FeedForward", (8, 12)),
    ("LayerNorm", (8,)),
    ("AddNorm", (8,)),
    ("EncoderLayer", (8, 2, 12)),
    ("DecoderLayer", (8, 2, 12)),
    ("TransformerBlock", (8, 2, 12)),
    ("Encoder", (2, 8, 2, 12)),
    ("Decoder", (2, 8, 2, 12)),
    ("Transformer", (11, 13, 8, 2, 2, 12, 0.1, 16)),
    ("GPT", (11, 8, 2, 2, 12, 16)),
]


@pytest.mark.parametrize(("name", "args"), STATE_CASES)
def test_state_dict_keys_shapes_and_buffers_match(name: str, args: tuple) -> None:
    ref_cls, orc_cls = _both(name)
    ref, orc = ref_cls(*args), orc_cls(*args)
    ref_sd, orc_sd = ref.state_dict(), orc.state_dict()
    assert list(orc_sd) == list(ref_sd)
    assert {k: v.shape for k, v in orc_sd.items()} == {k: v.shape for k, v in ref_sd.items()}
    ref_buffers, orc_buffers = dict(ref.named_buffers()), dict(orc.named_buffers())
    assert list(orc_buffers) == list(ref_buffers)
    for key, buf in ref_buffers.items():  # the sinusoidal table, float32, not persistent
        assert orc_buffers[key].dtype == buf.dtype and torch.equal(orc_buffers[key], buf)


def test_layer_norm_is_torch_layer_norm() -> None:
    ln = orc_normalization.LayerNorm(6, eps=1e-3)
    assert isinstance(ln, nn.LayerNorm) and ln.eps == 1e-3
    assert torch.equal(ln.weight, torch.ones(6)) and torch.equal(ln.bias, torch.zeros(6))


def test_the_forbidden_api_scan_flags_the_torch_nn_components() -> None:
    flagged = set()
    for module in dict.fromkeys(COMPONENTS.values()):
        path = _ROOT / "llm_grade" / "oracles" / f"{module}.py"
        source = path.read_text(encoding="utf-8")
        flagged |= {v.component for v in scan_source(source, module, str(path), DEFAULT_FORBIDDEN)}
    assert flagged == {
        "softmax",
        "scaled_dot_product_attention",
        "AttentionHead",
        "MultiHeadAttention",
        "gelu",
        "FeedForward",
        "LayerNorm",
    }


# --- environment ---------------------------------------------------------------------------


def test_get_device_and_count_parameters() -> None:
    assert orc_environment.get_device() == ref_environment.get_device()
    assert orc_environment.get_device("cpu") == torch.device("cpu")
    for prefer in ("cuda", "mps"):
        try:
            expected = ref_environment.get_device(prefer)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                orc_environment.get_device(prefer)
        else:
            assert orc_environment.get_device(prefer) == expected
    model = ref_transformer.GPT(11, 8, 2, 2, 12, 16)
    model.lm_head.weight.requires_grad_(False)
    for trainable_only in (True, False):
        assert orc_environment.count_parameters(model, trainable_only) == (
            ref_environment.count_parameters(model, trainable_only)
        )
    assert orc_environment.count_parameters(model) < orc_environment.count_parameters(model, False)


# --- functions -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax(dtype: torch.dtype, dim: int) -> None:
    x = _randn(3, 4, 5, dtype=dtype, scale=3.0)
    x[0, 1, :2] = float("-inf")
    x[1] = x[1] * 1e4  # huge inputs must not overflow
    _run_both(ref_attention.softmax, orc_attention.softmax, x, dtype=dtype, dim=dim)
    assert torch.isfinite(orc_attention.softmax(x, dim=dim)).all()


def test_masks() -> None:
    for n in (0, 1, 5):
        assert torch.equal(orc_attention.causal_mask(n), ref_attention.causal_mask(n))
    assert orc_attention.causal_mask(3, device="cpu").dtype == torch.bool
    tokens = torch.tensor([[5, 3, 0, 0], [1, 0, 2, 0]])
    ref, orc = ref_attention.padding_mask(tokens, 0), orc_attention.padding_mask(tokens, 0)
    assert orc.dtype == torch.bool and orc.shape == (2, 1, 4) and torch.equal(orc, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("q_shape", "k_shape", "v_shape", "mask_shape"),
    [
        ((B, T, 4), (B, S, 4), (B, S, 3), None),
        ((B, T, 4), (B, S, 4), (B, S, 4), (T, S)),
        ((B, T, 4), (B, S, 4), (B, S, 6), (B, 1, S)),
        ((B, 3, T, 4), (B, 3, S, 4), (B, 3, S, 2), (B, 1, T, S)),
        ((T, 4), (S, 4), (S, 2), (B, T, S)),  # the mask broadcasts the batch in
        ((1, T, 4), (S, 4), (3, 1, S, 5), (B, T, S)),
    ],
)
def test_scaled_dot_product_attention(dtype, q_shape, k_shape, v_shape, mask_shape) -> None:
    q, k, v = (_randn(*s, dtype=dtype) for s in (q_shape, k_shape, v_shape))
    mask = None
    if mask_shape is not None:
        mask = torch.rand(mask_shape) < 0.6
        mask[..., 0] = True
    inputs = (q, k, v, mask)
    before = [x.clone() for x in (q, k, v)]
    ref_out, ref_w = ref_attention.scaled_dot_product_attention(*inputs)
    orc_out, orc_w = orc_attention.scaled_dot_product_attention(*inputs)
    assert all(torch.equal(a, b) for a, b in zip(before, (q, k, v), strict=True))
    _check_same(ref_out, orc_out, dtype)
    _check_same(ref_w, orc_w, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(dtype: torch.dtype, approximate: str) -> None:
    x = _randn(4, 7, dtype=dtype, scale=3.0)
    _run_both(ref_feedforward.gelu, orc_feedforward.gelu, x, dtype=dtype, approximate=approximate)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("seq_len", "d_model", "base"), [(0, 4, 1e4), (7, 6, 1e4), (50, 16, 7.0)])
def test_sinusoidal_positional_encoding(dtype, seq_len: int, d_model: int, base: float) -> None:
    ref = ref_embeddings.sinusoidal_positional_encoding(seq_len, d_model, base=base, dtype=dtype)
    orc = orc_embeddings.sinusoidal_positional_encoding(seq_len, d_model, base=base, dtype=dtype)
    assert orc.dtype == dtype and orc.shape == (seq_len, d_model)
    torch.testing.assert_close(orc, ref, atol=0, rtol=0)  # same float64 formula, bit for bit
    default = orc_embeddings.sinusoidal_positional_encoding(3, 4)
    assert default.dtype == torch.float32


# --- modules -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_embeddings(dtype: torch.dtype) -> None:
    tokens = torch.randint(0, 11, (B, T))
    ref, orc = _pair("TokenEmbedding", 11, 8, dtype=dtype)
    _run_both(ref, orc, tokens, dtype=dtype)
    x = _randn(B, T, 8, dtype=dtype)
    for name, args in (
        ("SinusoidalPositionalEncoding", (8, 16)),
        ("LearnedPositionalEmbedding", (16, 8)),
    ):
        ref, orc = _pair(name, *args, dtype=dtype)
        _run_both(ref, orc, x, dtype=dtype)
    # float32 modules keep working on float64 inputs like the reference (table cast to x.dtype)
    ref, orc = _pair("SinusoidalPositionalEncoding", 8, 16, dtype=torch.float32)
    _run_both(ref, orc, _randn(B, T, 8), dtype=torch.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_attention_head(dtype: torch.dtype, kind: str) -> None:
    ref, orc = _pair("AttentionHead", 8, 3, dtype=dtype)
    x = _randn(B, T, 8, dtype=dtype)
    _run_both(ref, orc, x, dtype=dtype, mask=_mask(kind))
    if kind in ("none", "padding", "random"):  # cross-attention over a context of length S
        context = _randn(B, S, 8, dtype=dtype)
        mask = _mask(kind, T, S)
        _run_both(ref, orc, x, context, mask, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("bias", [True, False])
def test_multi_head_attention(dtype: torch.dtype, kind: str, bias: bool) -> None:
    ref, orc = _pair("MultiHeadAttention", 12, 3, 0.1, bias, dtype=dtype)
    x = _randn(B, T, 12, dtype=dtype)
    _run_both(ref, orc, x, x, x, _mask(kind), dtype=dtype)
    if kind in ("none", "padding", "random"):
        memory = _randn(B, S, 12, dtype=dtype)
        _run_both(ref, orc, x, memory, memory, _mask(kind, T, S), dtype=dtype)


def test_multi_head_attention_dropout_is_on_the_weights_in_training_only() -> None:
    _, orc = _pair("MultiHeadAttention", 8, 2, 0.5)
    x = _randn(B, T, 8)
    eval_out = orc(x, x, x)
    orc.train()
    assert not torch.allclose(orc(x, x, x), eval_out)
    _, orc = _pair("MultiHeadAttention", 8, 2, 0.0)
    orc.train()
    torch.testing.assert_close(orc(x, x, x), orc.eval()(x, x, x), atol=0, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_feed_forward_layer_norm_add_norm(dtype: torch.dtype) -> None:
    x, y = _randn(B, T, 8, dtype=dtype, scale=2.0), _randn(B, T, 8, dtype=dtype)
    ref, orc = _pair("FeedForward", 8, 12, dtype=dtype)
    _run_both(ref, orc, x, dtype=dtype)
    for eps in (1e-5, 0.5):
        ref, orc = _pair("LayerNorm", 8, eps, dtype=dtype)
        _run_both(ref, orc, x + 3.0, dtype=dtype)
        ref, orc = _pair("AddNorm", 8, 0.0, eps, dtype=dtype)
        _run_both(ref, orc, x, y, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_layers_and_stacks(dtype: torch.dtype, kind: str) -> None:
    x, memory = _randn(B, T, 8, dtype=dtype), _randn(B, S, 8, dtype=dtype)
    mask, memory_mask = _mask(kind), _mask("padding", T, S) if kind != "none" else None
    for name in ("EncoderLayer", "TransformerBlock"):
        ref, orc = _pair(name, 8, 2, 12, 0.1, dtype=dtype)
        _run_both(ref, orc, x, mask, dtype=dtype)
    ref, orc = _pair("DecoderLayer", 8, 2, 12, 0.1, dtype=dtype)
    _run_both(ref, orc, x, memory, mask, memory_mask, dtype=dtype)
    ref, orc = _pair("Encoder", 2, 8, 2, 12, 0.1, dtype=dtype)
    _run_both(ref, orc, x, mask, dtype=dtype)
    ref, orc = _pair("Decoder", 2, 8, 2, 12, 0.1, dtype=dtype)
    _run_both(ref, orc, x, memory, mask, memory_mask, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
def test_transformer_and_gpt(dtype: torch.dtype, masked: bool) -> None:
    src, tgt = torch.randint(0, 11, (B, S)), torch.randint(0, 13, (B, T))
    src_mask = _mask("padding", T, S) if masked else None
    tgt_mask = _mask("padding") if masked else None
    ref, orc = _pair("Transformer", 11, 13, 8, 2, 2, 12, 0.1, 16, dtype=dtype)
    _run_both(ref, orc, src, tgt, src_mask, tgt_mask, dtype=dtype)
    _run_both(ref.encode, orc.encode, src, src_mask, dtype=dtype)
    memory = ref.encode(src, src_mask)
    _run_both(ref.decode, orc.decode, tgt, memory, tgt_mask, src_mask, dtype=dtype)
    ref, orc = _pair("GPT", 11, 8, 2, 2, 12, 16, dtype=dtype)
    _run_both(ref, orc, tgt % 11, tgt_mask, dtype=dtype)


def test_oracle_parts_injected_into_a_reference_composite() -> None:
    """What the engine does: swap a sub-module for the oracle with the same weights."""
    ref, _ = _pair("EncoderLayer", 8, 2, 12)
    x, mask = _randn(B, T, 8), _mask("causal&padding")
    expected = ref(x, mask)
    for path, name, args in (
        ("self_attn", "MultiHeadAttention", (8, 2)),
        ("ffn", "FeedForward", (8, 12)),
        ("add_norm1", "AddNorm", (8,)),
        ("add_norm2.norm", "LayerNorm", (8,)),
    ):
        oracle = _both(name)[1](*args).double().eval()
        oracle.load_state_dict(ref.get_submodule(path).state_dict(), strict=True)
        owner, _, leaf = path.rpartition(".")
        setattr(ref.get_submodule(owner), leaf, oracle)
        torch.testing.assert_close(ref(x, mask), expected, **TOL[torch.float64])


# --- greedy decoding -------------------------------------------------------------------------


def test_greedy_decode() -> None:
    ref, orc = _pair("Transformer", 11, 13, 8, 2, 2, 12, 0.1, 16)
    src = torch.randint(0, 11, (3, S))
    src_mask = (torch.arange(S) < torch.tensor([S, 2, 3]).unsqueeze(1)).unsqueeze(1)
    first = ref_transformer.greedy_decode(ref, src, 2, 1, 0)[:, 1]
    cases = [
        (6, 1, 0, None),
        (6, 1, 0, src_mask),
        (1, 1, 0, None),
        (7, 1, int(first[0]), None),
        (7, 1, int(first[1]), src_mask),
    ]  # the last two finish some rows early
    for max_len, bos_id, eos_id, mask in cases:
        expected = ref_transformer.greedy_decode(ref, src, max_len, bos_id, eos_id, mask)
        for fn, model in (
            (orc_transformer.greedy_decode, ref),
            (orc_transformer.greedy_decode, orc),
            (ref_transformer.greedy_decode, orc),
        ):
            out = fn(model, src, max_len, bos_id, eos_id, mask)
            assert out.dtype == torch.long and torch.equal(out, expected)
    # a finished row is padded with eos_id; generation stops when every row has finished
    out = orc_transformer.greedy_decode(ref, src[:1], 7, 1, int(first[0]))
    assert out.tolist() == [[1, int(first[0])]]


# --- ValueError parity -----------------------------------------------------------------------

BAD = [
    ("TokenEmbedding", (0, 8), {}),
    ("TokenEmbedding", (11, 0), {}),
    ("sinusoidal_positional_encoding", (4, 5), {}),
    ("sinusoidal_positional_encoding", (4, 0), {}),
    ("sinusoidal_positional_encoding", (-1, 4), {}),
    ("SinusoidalPositionalEncoding", (7,), {}),
    ("SinusoidalPositionalEncoding", (8, 0), {}),
    ("SinusoidalPositionalEncoding", (8, 16, 1.0), {}),
    ("LearnedPositionalEmbedding", (0, 8), {}),
    ("LearnedPositionalEmbedding", (16, 8, -0.1), {}),
    ("causal_mask", (-1,), {}),
    ("AttentionHead", (0, 3), {}),
    ("AttentionHead", (8, 0), {}),
    ("MultiHeadAttention", (8, 3), {}),
    ("MultiHeadAttention", (8, 0), {}),
    ("MultiHeadAttention", (0, 2), {}),
    ("MultiHeadAttention", (8, 2, 1.0), {}),
    ("gelu", (torch.zeros(2), "exact"), {}),
    ("FeedForward", (0, 4), {}),
    ("FeedForward", (4, 0), {}),
    ("FeedForward", (4, 8, 1.5), {}),
    ("LayerNorm", (0,), {}),
    ("LayerNorm", (4, 0.0), {}),
    ("AddNorm", (4, 1.0), {}),
    ("AddNorm", (4,), {"eps": -1.0}),
    ("EncoderLayer", (8, 3, 12), {}),
    ("DecoderLayer", (8, 2, 0), {}),
    ("TransformerBlock", (0, 2, 12), {}),
    ("TransformerBlock", (8, 2, 12, 1.0), {}),
    ("Encoder", (0, 8, 2, 12), {}),
    ("Decoder", (1, 8, 3, 12), {}),
    ("Transformer", (11, 13, 7, 7), {}),
    ("Transformer", (11, 13), {"d_model": 8, "n_heads": 2, "n_layers": 0}),
    ("Transformer", (11, 13), {"d_model": 8, "n_heads": 2, "max_len": 0}),
    ("GPT", (11,), {"n_layers": 0}),
    ("GPT", (11,), {"d_model": 8, "n_heads": 3}),
    ("GPT", (11,), {"d_model": 8, "n_heads": 2, "max_len": 0}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), BAD)
def test_value_error_parity(name: str, args: tuple, kwargs: dict) -> None:
    ref, orc = _both(name)
    with pytest.raises(ValueError) as ref_error:
        ref(*args, **kwargs)
    with pytest.raises(ValueError) as orc_error:
        orc(*args, **kwargs)
    assert str(orc_error.value) == str(ref_error.value)


def test_value_error_parity_at_call_time() -> None:
    for name, args in (
        ("SinusoidalPositionalEncoding", (8, 4)),
        ("LearnedPositionalEmbedding", (4, 8)),
    ):
        ref, orc = _pair(name, *args)
        for module in (ref, orc):
            with pytest.raises(ValueError, match="max_len"):
                module(_randn(1, 5, 8))
    model = ref_transformer.Transformer(11, 13, 8, 2, 1, 12, 0.0, 16)
    for fn in (ref_transformer.greedy_decode, orc_transformer.greedy_decode):
        with pytest.raises(ValueError, match="max_len"):
            fn(model, torch.zeros(1, 3, dtype=torch.long), 0, 1, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES)
def test_on_cuda(dtype: torch.dtype) -> None:
    ref, orc = _pair("Transformer", 11, 13, 8, 2, 2, 12, 0.1, 16, dtype=dtype)
    ref, orc = ref.cuda(), orc.cuda()
    src = torch.randint(0, 11, (B, S), device="cuda")
    tgt = torch.randint(0, 13, (B, T), device="cuda")
    src_mask = _mask("padding", T, S).cuda()
    _run_both(ref, orc, src, tgt, src_mask, _mask("padding").cuda(), dtype=dtype)
    ref, orc = _pair("GPT", 11, 8, 2, 2, 12, 16, dtype=dtype)
    _run_both(ref.cuda(), orc.cuda(), tgt % 11, _mask("random").cuda(), dtype=dtype)
    ref, orc = _pair("Transformer", 11, 13, 8, 2, 2, 12, 0.1, 16)
    ref, orc = ref.cuda(), orc.cuda()
    expected = ref_transformer.greedy_decode(ref, src, 6, 1, 0, src_mask)
    out = orc_transformer.greedy_decode(orc, src, 6, 1, 0, src_mask)
    assert out.device.type == "cuda" and torch.equal(out, expected)
