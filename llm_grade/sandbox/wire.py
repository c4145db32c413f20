"""What may cross the boundary between learner code and the grader: plain data only.

:func:`sanitize` runs on the learner's side of the boundary and maps any value to plain data:
exact ``torch.Tensor`` objects (detached copies), numbers, strings, ``None``, devices, dtypes,
lists, tuples and string-keyed dicts of those, and object references. Anything else becomes an
:class:`Opaque` record that names its type, so a grader can say "returned a numpy.ndarray"
instead of ever holding a learner-made object.

:func:`encode` and :func:`decode` turn such plain data into bytes and back; each message travels
as one frame of :mod:`llm_grade.sandbox.framing` (the framing of this protocol, kept in a module
of its own because this one imports torch). Both sides of the trust boundary use this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

MAX_DEPTH = 8
MAX_ITEMS = 10_000


@dataclass(frozen=True)
class Opaque:
    """Stands for a value that is not plain data (kept: its type name only)."""

    type_name: str

    def __str__(self) -> str:
        return f"a {self.type_name}"


def type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    if isinstance(value, torch.Tensor) and cls is not torch.Tensor:
        return f"{module}.{cls.__qualname__} (a torch.Tensor subclass)"
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def sanitize(value: Any, depth: int = 0) -> Any:
    """Plain-data copy of ``value`` (see the module docstring)."""
    if depth > MAX_DEPTH:
        return Opaque("structure nested too deeply")
    cls = type(value)
    if cls is torch.Tensor:
        # a plain tensor: copy its data so later learner code cannot change what we hold (and
        # bring it to the CPU, where the grader compares)
        if value.device.type in ("cpu", "meta"):
            return value.detach().clone()
        return value.detach().to("cpu")
    if value is None or cls in (bool, int, float, str):
        return value
    if cls is torch.device:
        return torch.device(str(value))
    if cls is torch.dtype:
        return value
    if cls in (list, tuple):
        if len(value) > MAX_ITEMS:
            return Opaque(f"{cls.__name__} of {len(value)} items")
        return cls(sanitize(v, depth + 1) for v in value)
    if isinstance(value, dict):  # dict, OrderedDict (state_dict), executor Ref -> plain dict
        if len(value) > MAX_ITEMS or not all(type(k) is str for k in value):
            return Opaque("dict with non-string keys")
        out = {k: sanitize(v, depth + 1) for k, v in value.items()}
        return out
    return Opaque(type_name(value))


# --------------------------------------------------------------------------- byte codec
# Messages between the grader and a worker process: a JSON header describing the structure,
# followed by the raw bytes of every tensor. Decoding never runs pickle or any learner-chosen
# code: it only builds dicts, lists, tuples, numbers, strings and plain tensors.

_DTYPES = {
    name: getattr(torch, name)
    for name in (
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "complex64",
        "complex128",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "bool",
    )
}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


class WireError(ValueError):
    """A message could not be encoded or decoded (malformed or too large)."""


def _encode(value: Any, blobs: list[bytes]) -> Any:
    cls = type(value)
    if value is None or cls in (bool, int, str):
        return value
    if cls is float:
        return (
            value if value == value and abs(value) != float("inf") else {"__float__": repr(value)}
        )
    if cls is torch.Tensor:
        if value.dtype not in _DTYPE_NAMES:
            return {"__opaque__": f"tensor of dtype {value.dtype}"}
        if value.device.type == "meta":  # no data: what it is, and where (causal_mask's device)
            return {"__meta__": _DTYPE_NAMES[value.dtype], "shape": [int(s) for s in value.shape]}
        t = value.detach().cpu().contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        blobs.append(data)
        return {
            "__tensor__": len(blobs) - 1,
            "dtype": _DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "device": str(value.device),
        }
    if cls is torch.device:
        return {"__device__": str(value)}
    if cls is torch.dtype:
        return {"__dtype__": str(value).replace("torch.", "")}
    if cls is Opaque:
        return {"__opaque__": value.type_name}
    if cls is tuple:
        return {"__tuple__": [_encode(v, blobs) for v in value]}
    if cls is list:
        return [_encode(v, blobs) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[str(k), _encode(v, blobs)] for k, v in value.items()]}
    return {"__opaque__": type_name(value)}


def encode(value: Any) -> bytes:
    """Bytes for ``value`` (plain data as :func:`sanitize` returns it)."""
    import json

    blobs: list[bytes] = []
    header = json.dumps(_encode(value, blobs)).encode()
    sizes = json.dumps([len(b) for b in blobs]).encode()
    return b"".join(
        [len(header).to_bytes(8, "little"), len(sizes).to_bytes(8, "little"), header, sizes, *blobs]
    )


def decode(data: bytes, *, max_bytes: int = 1 << 30) -> Any:
    """Inverse of :func:`encode`; raises :class:`WireError` on anything malformed."""
    import json

    if len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        n_header = int.from_bytes(data[:8], "little")
        n_sizes = int.from_bytes(data[8:16], "little")
        header = json.loads(data[16 : 16 + n_header])
        sizes = json.loads(data[16 + n_header : 16 + n_header + n_sizes])
        offsets, pos = [], 16 + n_header + n_sizes
        for size in sizes:
            offsets.append((pos, pos + int(size)))
            pos += int(size)
        if pos != len(data):
            raise WireError("message length does not match its header")
        return _decode(header, data, offsets, 0)
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed input is a WireError
        raise WireError(f"malformed message: {exc}") from None


def _decode(node: Any, data: bytes, offsets: list[tuple[int, int]], depth: int) -> Any:
    if depth > 64:
        raise WireError("message nested too deeply")
    if node is None or type(node) in (bool, int, str, float):
        return node
    if type(node) is list:
        return [_decode(v, data, offsets, depth + 1) for v in node]
    if type(node) is not dict or len(node) == 0:
        raise WireError("unexpected node in message")
    if "__tensor__" in node:
        start, end = offsets[int(node["__tensor__"])]
        dtype = _DTYPES[node["dtype"]]
        shape = [int(s) for s in node["shape"]]
        raw = (
            torch.frombuffer(bytearray(data[start:end]), dtype=torch.uint8)
            if end > start
            else torch.empty(0, dtype=torch.uint8)
        )
        tensor = raw.view(dtype).reshape(shape) if raw.numel() else torch.empty(shape, dtype=dtype)
        return tensor
    if "__meta__" in node:
        shape = [int(s) for s in node["shape"]]
        if sum(shape) > MAX_ITEMS * 100:
            raise WireError("meta tensor too large")
        return torch.empty(shape, dtype=_DTYPES[node["__meta__"]], device="meta")
    if "__float__" in node:
        return float(node["__float__"])
    if "__device__" in node:
        return torch.device(str(node["__device__"]))
    if "__dtype__" in node:
        return _DTYPES[str(node["__dtype__"])]
    if "__opaque__" in node:
        return Opaque(str(node["__opaque__"]))
    if "__tuple__" in node:
        return tuple(_decode(v, data, offsets, depth + 1) for v in node["__tuple__"])
    if "__dict__" in node:
        return {str(k): _decode(v, data, offsets, depth + 1) for k, v in node["__dict__"]}
    raise WireError("unexpected node in message")
