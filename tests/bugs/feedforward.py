"""Typical GELU and feed-forward bugs (curriculum 1.5)."""

from bug import Bug

BUGS = [
    Bug(
        "gelu-tanh-form-by-default",
        "feedforward",
        "        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))",
        "        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)\n"
        "        return 0.5 * x * (1.0 + torch.tanh(inner))",
        "gelu",
        "torch.erf",
    ),
    Bug(
        "gelu-is-relu",
        "feedforward",
        "        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))",
        "        return torch.relu(x)",
        "gelu",
        "not ReLU",
    ),
    Bug(
        "gelu-erf-without-sqrt2",
        "feedforward",
        "        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))",
        "        return x * 0.5 * (1.0 + torch.erf(x))",
        "gelu",
        "sqrt(2) inside erf",
    ),
    Bug(
        "gelu-tanh-wrong-constant",
        "feedforward",
        "        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)",
        "        inner = math.sqrt(math.pi / 2.0) * (x + 0.044715 * x**3)",
        "gelu",
        "sqrt(2 / math.pi)",
    ),
    Bug(
        "gelu-tanh-mode-ignored",
        "feedforward",
        '    if approximate == "none":',
        '    if approximate in ("none", "tanh"):',
        "gelu",
        "tanh",
    ),
    Bug(
        "gelu-unknown-approximate-accepted",
        "feedforward",
        '    raise ValueError(f\'approximate must be "none" or "tanh", got {approximate!r}\')',
        "    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))",
        "gelu",
        "raise ValueError",
    ),
    Bug(
        "ffn-relu-instead-of-gelu",
        "feedforward",
        "        return self.fc2(self.dropout(gelu(self.fc1(x))))",
        "        return self.fc2(self.dropout(torch.relu(self.fc1(x))))",
        "FeedForward",
        "your gelu",
    ),
    Bug(
        "ffn-dropout-always-on",
        "feedforward",
        "        return self.fc2(self.dropout(gelu(self.fc1(x))))",
        "        return self.fc2(\n"
        "            torch.nn.functional.dropout(gelu(self.fc1(x)), self.dropout.p, True)\n"
        "        )",
        "FeedForward",
        "eval()",
    ),
    Bug(
        "ffn-dropout-missing",
        "feedforward",
        "        return self.fc2(self.dropout(gelu(self.fc1(x))))",
        "        return self.fc2(gelu(self.fc1(x)))",
        "FeedForward",
        "between gelu and fc2",
    ),
    # ---- round two: what credit isolation hid, train mode, devices, magnitudes, arguments
    Bug(
        "ffn-dropout-before-gelu",
        "feedforward",
        "        return self.fc2(self.dropout(gelu(self.fc1(x))))",
        "        return self.fc2(gelu(self.dropout(self.fc1(x))))",
        "FeedForward",
        "between gelu and fc2",
    ),
    Bug(
        "ffn-dropout-after-fc2",
        "feedforward",
        "        return self.fc2(self.dropout(gelu(self.fc1(x))))",
        "        return self.dropout(self.fc2(gelu(self.fc1(x))))",
        "FeedForward",
        "fc2's output",
    ),
    Bug(
        "ffn-dropout-p-hard-coded",
        "feedforward",
        "        self.dropout = nn.Dropout(dropout)",
        "        self.dropout = nn.Dropout(0.1)",
        "FeedForward",
        "with the module's p",
    ),
]
