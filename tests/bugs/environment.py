"""Typical environment bugs (curriculum 0.2)."""

from bug import Bug

BUGS = [
    Bug(
        "count-parameters-ignores-trainable-only",
        "environment",
        " if p.requires_grad or not trainable_only)",
        ")",
        "count_parameters",
        "requires_grad",
    ),
    Bug(
        "count-parameters-counts-buffers",
        "environment",
        "for p in model.parameters() if",
        "for p in [*model.parameters(), *model.buffers()] if",
        "count_parameters",
        "buffers are not parameters",
    ),
    Bug(
        "get-device-returns-a-string",
        "environment",
        "    return torch.device(prefer)",
        "    return prefer",
        "get_device",
        "torch.device",
    ),
    Bug(
        "get-device-skips-availability-check",
        "environment",
        "    if not _available(prefer):\n",
        "    if False:\n",
        "get_device",
        "is_available",
    ),
    Bug(
        "get-device-unknown-name-not-rejected",
        "environment",
        "    if prefer not in _KNOWN_DEVICES:\n",
        "    if False:\n",
        "get_device",
        "ValueError naming `prefer`",
    ),
    # ---- round two
    Bug(
        "count-parameters-counts-shared-twice",
        "environment",
        "for p in model.parameters() if",
        "for _, p in model.named_parameters(remove_duplicate=False) if",
        "count_parameters",
        "count each parameter once",
    ),
]
