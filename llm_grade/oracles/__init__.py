"""The torch.nn "oracle" implementation of every graded name of API.md.

A second, independent, correct implementation built from ``torch.nn`` / ``torch.nn.functional``
building blocks (``F.softmax``, ``F.scaled_dot_product_attention``, ``F.gelu``, ``nn.LayerNorm``),
with the reference's signatures, state_dict keys and ``ValueError`` conditions. It has two uses:

- credit isolation: the grading engine injects these modules and functions as trusted
  sub-components into a learner's composite (with the reference's weights loaded), so the
  composite is graded on its own wiring;
- the "correct solution written with torch.nn" in tests: it must score 100% with the
  forbidden-API rule off, and be flagged by it when the rule is on.

Modules mirror ``reference/``: ``environment``, ``embeddings``, ``attention``, ``feedforward``,
``normalization``, ``blocks``, ``transformer``.
"""
