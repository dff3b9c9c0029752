"""Parameters with roles: what an optimizer factory receives.

Matrix-aware optimizers (Muon, Scion) treat a parameter by its *role* in the network:

* ``hidden`` — matrix or conv weights inside the network,
* ``input``  — the first layer / embeddings,
* ``output`` — the head,
* ``vector`` — biases and norm gains (anything with fewer than two dimensions).

Tasks declare roles (usually through :func:`infer_roles`); element-wise optimizers ignore them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch loads when a function here needs it: the names above are imported by light modules
    import torch
    from torch import nn

Role = Literal["hidden", "input", "output", "vector"]
ROLES: tuple[Role, ...] = ("hidden", "input", "output", "vector")


@dataclass(frozen=True, eq=False)
class ParamInfo:
    """One trained tensor, its name and its role."""

    name: str
    tensor: torch.Tensor
    role: Role
    embedding: bool = False
    """A lookup table stored as (entries, dim), row i being the vector of entry i (``nn.Embedding``'s
    layout) rather than a linear map from dim to entries. Tasks set it; Scion's column and row norms use
    it to pick the axis (the reference's ``transpose=True`` for embeddings)."""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role of '{self.name}' must be one of {ROLES}, got {self.role!r}")


def tensors(params: Iterable[ParamInfo], roles: Sequence[Role] | None = None) -> list[torch.Tensor]:
    """The tensors of ``params``, optionally only those whose role is in ``roles``."""
    return [p.tensor for p in params if roles is None or p.role in roles]


def infer_roles(model: nn.Module, overrides: dict[str, Role] | None = None) -> list[ParamInfo]:
    """Roles by position: the first weighted layer is ``input``, the last ``output``, other
    weights of two or more dimensions ``hidden``, the rest ``vector``.

    ``overrides`` maps parameter names to roles where position is not the truth (tied
    embeddings, heads registered before the body, ...).
    """
    from torch import nn

    weighted = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)
    overrides = overrides or {}
    weight_names = [
        f"{module_name}.weight" if module_name else "weight"
        for module_name, module in model.named_modules()
        if isinstance(module, weighted) and module.weight is not None and module.weight.requires_grad
    ]
    first, last = (weight_names[0], weight_names[-1]) if weight_names else (None, None)
    infos = []
    for name, tensor in model.named_parameters():
        if name in overrides:
            role = overrides[name]
        elif tensor.ndim < 2:
            role = "vector"
        elif name == first:
            role = "input"
        elif name == last:
            role = "output"
        else:
            role = "hidden"
        infos.append(ParamInfo(name, tensor, role))
    return infos


def probe_params(seed: int = 0) -> list[ParamInfo]:
    """A tiny parameter set with every role and shape kind: used to check hyperparameters
    (and plugins) by building an optimizer before any training starts."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(seed)

    def param(*shape: int) -> nn.Parameter:
        return nn.Parameter(torch.randn(*shape, generator=generator) * 0.1)

    return [
        ParamInfo("input.weight", param(8, 4), "input"),
        ParamInfo("hidden.weight", param(8, 8), "hidden"),
        ParamInfo("conv.weight", param(4, 2, 3, 3), "hidden"),
        ParamInfo("output.weight", param(3, 8), "output"),
        ParamInfo("hidden.bias", param(8), "vector"),
    ]
