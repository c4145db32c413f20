"""An example submission for `llm-grade grade --example`.

It is a copy of the reference with three planted bugs that learners often write:
the attention mask applied after the softmax (MultiHeadAttention), the unbiased variance in
LayerNorm, and sine and cosine swapped in the positional encoding. Grade it to see the
feedback a learner gets; every other component scores full points.

The original docstring of the reference follows.

The instructor's reference Transformer: a correct, readable model answer.

One module per curriculum section (see ../shared/curriculum.md):

- ``environment``   Part 0.2  devices and parameter counts
- ``embeddings``    1.1       token embeddings, sinusoidal and learned positions
- ``attention``     1.2-1.4   softmax, masks, scaled dot-product, one head, many heads
- ``feedforward``   1.5       GELU and the position-wise MLP
- ``normalization`` 1.5       LayerNorm and the residual Add & Norm
- ``blocks``        1.6       encoder layer, decoder layer, GPT block
- ``transformer``             encoder-decoder Transformer, GPT, greedy decoding

Everything is written by hand from tensor operations: softmax, GELU, LayerNorm and
attention never call their ``torch.nn`` counterparts.
"""
