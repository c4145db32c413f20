"""Typical LayerNorm and Add & Norm bugs (curriculum 1.5)."""

from bug import Bug

BUGS = [
    Bug(
        "layernorm-unbiased-variance",
        "normalization",
        "        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased variance, (..., 1)",
        "        var = x.var(dim=-1, keepdim=True)",
        "LayerNorm",
        "divide by N, not N-1",
    ),
    Bug(
        "layernorm-eps-outside-sqrt",
        "normalization",
        "        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias",
        "        return (x - mean) / (torch.sqrt(var) + self.eps) * self.weight + self.bias",
        "LayerNorm",
        "inside the square root",
    ),
    Bug(
        "layernorm-eps-hard-coded",
        "normalization",
        "        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias",
        "        return (x - mean) / torch.sqrt(var + 1e-5) * self.weight + self.bias",
        "LayerNorm",
        "self.eps",
    ),
    Bug(
        "layernorm-forgets-bias",
        "normalization",
        "        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias",
        "        return (x - mean) / torch.sqrt(var + self.eps) * self.weight",
        "LayerNorm",
        "+ bias",
    ),
    Bug(
        "layernorm-forgets-weight",
        "normalization",
        "        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias",
        "        return (x - mean) / torch.sqrt(var + self.eps) + self.bias",
        "LayerNorm",
        "* weight",
    ),
    Bug(
        "layernorm-statistics-over-first-dim",
        "normalization",
        "        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)\n"
        "        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased variance, (..., 1)",
        "        mean = x.mean(dim=0, keepdim=True)\n"
        "        var = ((x - mean) ** 2).mean(dim=0, keepdim=True)",
        "LayerNorm",
        "last dimension",
    ),
    Bug(
        "layernorm-subtracts-mean-in-place",
        "normalization",
        "        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias",
        "        return x.sub_(mean) / torch.sqrt(var + self.eps) * self.weight + self.bias",
        "LayerNorm",
        "in place",
    ),
    Bug(
        "layernorm-accepts-zero-eps",
        "normalization",
        "        if eps <= 0:\n",
        "        if eps < 0:\n",
        "LayerNorm",
        "eps must be positive",
    ),
    Bug(
        "addnorm-without-residual",
        "normalization",
        "        return self.norm(x + self.dropout(sublayer_out))",
        "        return self.norm(self.dropout(sublayer_out))",
        "AddNorm",
        "residual",
    ),
    Bug(
        "addnorm-dropout-on-the-sum",
        "normalization",
        "        return self.norm(x + self.dropout(sublayer_out))",
        "        return self.norm(self.dropout(x + sublayer_out))",
        "AddNorm",
        "sub-layer's output only",
    ),
    Bug(
        "addnorm-pre-norm",
        "normalization",
        "        return self.norm(x + self.dropout(sublayer_out))",
        "        return x + self.dropout(self.norm(sublayer_out))",
        "AddNorm",
        "post-norm",
    ),
    Bug(
        "addnorm-dropout-always-on",
        "normalization",
        "        return self.norm(x + self.dropout(sublayer_out))",
        "        return self.norm(\n"
        "            x + torch.nn.functional.dropout(sublayer_out, self.dropout.p, training=True)\n"
        "        )",
        "AddNorm",
        "eval()",
    ),
    # ---- round two: what credit isolation hid, train mode, devices, magnitudes, arguments
    Bug(
        "addnorm-norm-is-torch-layernorm",
        "normalization",
        "        self.norm = LayerNorm(d_model, eps)",
        "        self.norm = nn.LayerNorm(d_model, eps)",
        "AddNorm",
        "torch.nn's LayerNorm",
    ),
    Bug(
        "addnorm-ignores-eps",
        "normalization",
        "        self.norm = LayerNorm(d_model, eps)",
        "        self.norm = LayerNorm(d_model)",
        "AddNorm",
        "built with eps=1e-05",
    ),
    Bug(
        "addnorm-accepts-bad-dropout",
        "normalization",
        (
            "        if not 0.0 <= dropout < 1.0:\n"
            '            raise ValueError(f"dropout must be in [0, 1), got {dropout}")\n'
            "        self.norm"
        ),
        "        self.norm",
        "AddNorm",
        "raise ValueError naming the argument",
    ),
    Bug(
        "layernorm-variance-by-cancellation",
        "normalization",
        "        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)",
        "        var = (x**2).mean(dim=-1, keepdim=True) - mean**2",
        "LayerNorm",
        "cancels catastrophically",
    ),
    Bug(
        "layernorm-init-swapped",
        "normalization",
        "        self.weight = nn.Parameter(torch.ones(d_model))",
        "        self.weight = nn.Parameter(torch.zeros(d_model))",
        "LayerNorm",
        "start as the identity",
    ),
    Bug(
        "layernorm-weight-is-a-buffer",
        "normalization",
        "        self.weight = nn.Parameter(torch.ones(d_model))",
        '        self.register_buffer("weight", torch.ones(d_model))',
        "LayerNorm",
        "no gradient reaches `weight`",
    ),
]
