"""Small, fully specified models that graders hand to learner functions.

``count_parameters`` and ``greedy_decode`` take a model as an argument. Using these
specimens instead of the learner's own classes grades each function on its own: a wrong
``Transformer`` never costs ``greedy_decode`` points. They are engine code, not the reference,
so a submission learns nothing from them.
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(sizes: list[int], frozen: list[int]) -> nn.Module:
    """``nn.Sequential`` of Linear layers; those listed in ``frozen`` have requires_grad off."""
    layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    for index in frozen:
        layers[index].requires_grad_(False)
    return nn.Sequential(*layers)


def tied(width: int) -> nn.Module:
    """Two ``Linear(width, width)`` layers sharing one weight (as a tied embedding and output
    head do): ``width * width + 2 * width`` parameters, the shared weight counted once."""
    first, second = nn.Linear(width, width), nn.Linear(width, width)
    second.weight = first.weight
    return nn.Sequential(first, nn.Tanh(), second)


class ScriptedSeq2Seq(nn.Module):
    """A stand-in for ``Transformer`` whose greedy continuation is known in advance.

    ``encode(src)`` returns ``src`` as float "memory" ``[B, S, 1]``. ``decode(tgt, memory)``
    returns, at every position ``t``, a one-hot vector over the vocabulary that points at
    ``(sum(tgt[:t+1]) + memory[:, 0] * (t + 1)) % (vocab - 1) + 1``, except that row ``b``
    emits ``eos_id`` at the position ``eos_after[b]`` (rows with -1 never do). ``out_proj``
    is the identity, so the argmax of ``out_proj(decode(...))[:, -1]`` is that token. The next
    token depends on the whole prefix, so a decoder that feeds only the last token, forgets
    to append, or decodes from the wrong memory produces a different sequence.
    """

    def __init__(self, vocab: int, eos_id: int, eos_after: list[int]):
        super().__init__()
        self.vocab = vocab
        self.eos_id = eos_id
        self.decode_with_grad = 0
        self.register_buffer("eos_after", torch.tensor(eos_after, dtype=torch.long))
        self.out_proj = nn.Linear(vocab, vocab, bias=False)
        with torch.no_grad():
            self.out_proj.weight.copy_(torch.eye(vocab))

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        memory = src.to(torch.float64).unsqueeze(-1)  # (B, S, 1)
        if src_mask is not None:
            memory = memory * src_mask.reshape(src.shape[0], -1, 1)
        return memory

    def report(self) -> dict:
        """What the grader asks after greedy_decode: the mode, and how many decode calls ran
        with gradients enabled."""
        return {"training": self.training, "decode_with_grad": self.decode_with_grad}

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, tgt_mask=None, memory_mask=None):
        self.decode_with_grad += int(torch.is_grad_enabled())
        B, T = tgt.shape
        positions = torch.arange(T, device=tgt.device)
        prefix = tgt.cumsum(dim=1)  # (B, T)
        offset = memory[:, 0, 0].round().long().unsqueeze(1) * (positions + 1)  # (B, T)
        nxt = (prefix + offset) % (self.vocab - 1) + 1  # never 0; may equal eos by chance
        nxt = torch.where(nxt == self.eos_id, (nxt % (self.vocab - 1)) + 1, nxt)
        eos_here = positions.unsqueeze(0) + 1 >= self.eos_after.unsqueeze(1)  # (B, T)
        eos_here &= self.eos_after.unsqueeze(1) >= 0
        nxt = torch.where(eos_here, torch.full_like(nxt, self.eos_id), nxt)
        return torch.nn.functional.one_hot(nxt, self.vocab).to(self.out_proj.weight.dtype)
