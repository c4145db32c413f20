"""The graded names of ../shared/API.md: which module defines each, in curriculum order."""

from __future__ import annotations

# component name -> module (the curriculum section) of a submission that defines it
COMPONENTS: dict[str, str] = {
    "get_device": "environment",
    "count_parameters": "environment",
    "TokenEmbedding": "embeddings",
    "sinusoidal_positional_encoding": "embeddings",
    "SinusoidalPositionalEncoding": "embeddings",
    "LearnedPositionalEmbedding": "embeddings",
    "softmax": "attention",
    "causal_mask": "attention",
    "padding_mask": "attention",
    "scaled_dot_product_attention": "attention",
    "AttentionHead": "attention",
    "MultiHeadAttention": "attention",
    "gelu": "feedforward",
    "FeedForward": "feedforward",
    "LayerNorm": "normalization",
    "AddNorm": "normalization",
    "EncoderLayer": "blocks",
    "DecoderLayer": "blocks",
    "TransformerBlock": "blocks",
    "Encoder": "transformer",
    "Decoder": "transformer",
    "Transformer": "transformer",
    "GPT": "transformer",
    "greedy_decode": "transformer",
}

MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMPONENTS.values()))


def module_of(component: str) -> str:
    """The module of a submission that must define ``component``."""
    try:
        return COMPONENTS[component]
    except KeyError:
        raise KeyError(f"{component!r} is not a graded name of API.md") from None
