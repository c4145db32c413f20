"""Learner stubs: the Transformer you build, one component at a time.

Every function and class here has the exact name, signature and state_dict keys that the
graders expect (see ../shared/API.md). Each body raises ``NotImplementedError``; replace it with
your code, guided by the docstring above it. Do not rename anything, do not change a signature,
and keep the attribute names the docstrings give: the graders load the reference's weights into
your modules with ``load_state_dict(..., strict=True)``.

Work through the modules in curriculum order (see ../shared/curriculum.md):

- ``environment``   Part 0.2  devices and parameter counts
- ``embeddings``    1.1       token embeddings, sinusoidal and learned positions
- ``attention``     1.2-1.4   softmax, masks, scaled dot-product, one head, many heads
- ``feedforward``   1.5       GELU and the position-wise MLP
- ``normalization`` 1.5       LayerNorm and the residual Add & Norm
- ``blocks``        1.6       encoder layer, decoder layer, GPT block
- ``transformer``             encoder-decoder Transformer, GPT, greedy decoding

Conventions that hold in every module:

- Tensors are batch-first: activations ``[B, T, d_model]``, tokens ``LongTensor[B, T]``.
- A mask is a ``torch.bool`` tensor, True = "may attend", broadcastable to ``[B, T_q, T_k]``.
- Nothing modifies its inputs in place; the output dtype is the input dtype (float32 and
  float64 both work); everything works on any device.
- Bad arguments raise ``ValueError`` with a message that names the argument.
- Write softmax, GELU, LayerNorm and attention yourself from tensor operations: their
  ``torch.nn`` counterparts are off limits (each docstring lists what a component may not call).
"""
