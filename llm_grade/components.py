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


def exactly(names) -> str:
    """A pytest ``-k`` expression selecting the checks of exactly the components ``names``:
    ``-k`` matches substrings, case-insensitively, so ``Encoder`` alone also selects
    ``EncoderLayer`` and ``Transformer`` selects ``TransformerBlock``."""
    parts = []
    for name in names:
        longer = [c for c in COMPONENTS if c != name and name.lower() in c.lower()]
        parts.append(f"({' and not '.join([name, *longer])})" if longer else name)
    return " or ".join(parts)


def selected(expression: str | None) -> list[str] | None:
    """The components a ``-k`` expression of API names selects (``"softmax or GPT"``), in
    curriculum order; None for no expression or any other one (pytest decides)."""
    if not expression:
        return None
    names = [part.strip() for part in expression.strip().split(" or ")]
    if names and all(name in COMPONENTS for name in names):
        return [c for c in COMPONENTS if c in names]
    return None


def narrowed(expression: str) -> str:
    """``-k Encoder`` (or ``-k "Encoder or GPT"``: API names only) as :func:`exactly` those
    components; any other ``-k`` expression as given (pytest's substring matching)."""
    chosen = selected(expression)
    return expression if chosen is None else exactly(chosen)


def module_of(component: str) -> str:
    """The module of a submission that must define ``component``."""
    try:
        return COMPONENTS[component]
    except KeyError:
        raise KeyError(f"{component!r} is not a graded name of API.md") from None


# The graded names each component may be built from (API.md): while a component is graded,
# exactly these (transitively) are trusted oracles in the learner's code, and no trusted
# implementation of the component itself, or of anything containing it, exists in the worker.
PARTS: dict[str, tuple[str, ...]] = {
    "SinusoidalPositionalEncoding": ("sinusoidal_positional_encoding",),
    "scaled_dot_product_attention": ("softmax",),
    "AttentionHead": ("scaled_dot_product_attention", "softmax"),
    "MultiHeadAttention": ("scaled_dot_product_attention", "softmax"),
    "FeedForward": ("gelu",),
    "AddNorm": ("LayerNorm",),
    "EncoderLayer": ("MultiHeadAttention", "AddNorm", "FeedForward", "LayerNorm"),
    "DecoderLayer": ("MultiHeadAttention", "AddNorm", "FeedForward", "LayerNorm"),
    "TransformerBlock": ("causal_mask", "LayerNorm", "MultiHeadAttention", "FeedForward"),
    "Encoder": ("EncoderLayer",),
    "Decoder": ("DecoderLayer",),
    "Transformer": (
        "TokenEmbedding",
        "SinusoidalPositionalEncoding",
        "Encoder",
        "Decoder",
        "causal_mask",
        "padding_mask",
    ),
    "GPT": (
        "TokenEmbedding",
        "LearnedPositionalEmbedding",
        "TransformerBlock",
        "LayerNorm",
        "causal_mask",
    ),
    # greedy_decode runs on a trusted Transformer the grader builds
    "greedy_decode": ("Transformer", "causal_mask", "padding_mask"),
}


def parts_of(component: str) -> tuple[str, ...]:
    """Every graded name ``component`` may be built from, transitively, in curriculum order
    (which puts parts before the wholes that contain them)."""
    found: set[str] = set()
    todo = list(PARTS.get(component, ()))
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += PARTS.get(name, ())
    return tuple(name for name in COMPONENTS if name in found)
