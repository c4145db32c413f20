"""Colours of the HTML report's pictures: the ramps (viridis, a blue-white-red diverging
ramp, Reds for errors), the fills for nan and masked cells, and the maths that picks a colour
along a ramp (:func:`ramp`) and a text colour that reads on it (:func:`ink`).

Trusted side: plain arithmetic on numbers already in ``results.json``; nothing here runs
learner code.
"""

from __future__ import annotations

# colour ramps, evenly spaced stops (viridis; RdBu reversed: blue < 0 < red; Reds)
SEQUENTIAL = tuple(
    "#" + c for c in "440154 472d7b 3b528b 2c728e 21918c 28ae80 5ec962 addc30 fde725".split()
)
DIVERGING = tuple(
    "#" + c for c in "2166ac 4393c3 92c5de d1e5f0 f7f7f7 fddbc7 f4a582 d6604d b2182b".split()
)
ERROR = tuple("#" + c for c in "fff5f0 fee0d2 fcbba1 fc9272 fb6a4a ef3b2c cb181d 99000d".split())
NAN_FILL = "#e6007e"
MASKED_FILL = "#eef0f3"


def ramp(stops: tuple[str, ...], t: float) -> str:
    """The colour at ``t`` in [0, 1] along evenly spaced ``stops``."""
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    a, b = stops[i], stops[i + 1]
    mix = [
        round(int(a[k : k + 2], 16) * (1 - t + i) + int(b[k : k + 2], 16) * (t - i))
        for k in (1, 3, 5)
    ]
    return "#" + "".join(f"{c:02x}" for c in mix)


def ink(fill: str) -> str:
    """Text colour that reads on ``fill``."""
    r, g, b = (int(fill[k : k + 2], 16) for k in (1, 3, 5))
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#ffffff"
