"""The update-norm probe: ‖R_k‖ measured from parameter deltas.

R_k = (θ_k − θ_{k+1}) / η_k, with η_k the learning rate of each parameter's group at step k. It is
measured from parameters, never from the optimizer's internals or ``p.grad`` (some optimizers
overwrite gradients inside ``step()``), so it works for every optimizer. One global L2 norm over all
trained parameters, plus one per role.

The probe sees ``(params_before, params_after, lr)`` and nothing else; the hot path is three
multi-tensor (``_foreach``) kernels and no host synchronisation.
"""

from __future__ import annotations

import torch

from optimizers.params import ROLES, ParamInfo

SERIES_NAMES: tuple[str, ...] = ("update_norm",) + tuple(f"update_norm.{role}" for role in ROLES)


class UpdateNormProbe:
    """Call :meth:`before` just before ``optimizer.step()`` and :meth:`after` just after."""

    def __init__(self, params: list[ParamInfo], optimizer: torch.optim.Optimizer):
        self.tensors = [p.tensor for p in params]
        self.buffers = [torch.empty_like(t, memory_format=torch.preserve_format) for t in self.tensors]
        device = self.tensors[0].device
        self.role_index = torch.tensor([ROLES.index(p.role) for p in params], device=device)
        group_of = {id(t): g for g, group in enumerate(optimizer.param_groups) for t in group["params"]}
        self.group_index = torch.tensor([group_of.get(id(t), 0) for t in self.tensors], device=device)
        self.optimizer = optimizer

    @torch.no_grad()
    def before(self) -> None:
        torch._foreach_copy_(self.buffers, self.tensors)

    def lrs(self) -> torch.Tensor:
        """η per parameter, from the optimizer's groups at this step."""
        group_lrs = torch.tensor([float(g["lr"]) for g in self.optimizer.param_groups], dtype=torch.float64)
        return group_lrs.to(self.group_index.device)[self.group_index]

    @torch.no_grad()
    def after(self) -> torch.Tensor:
        """[‖R_k‖, ‖R_k‖ per role (hidden, input, output, vector)] as a float64 tensor."""
        torch._foreach_sub_(self.buffers, self.tensors)
        norms = torch.stack(torch._foreach_norm(self.buffers)).to(torch.float64) / self.lrs()
        per_role = torch.zeros(len(ROLES), dtype=torch.float64, device=norms.device)
        per_role.index_add_(0, self.role_index, norms.square())
        return torch.cat([per_role.sum().reshape(1), per_role]).sqrt()


def flat_params(params: list[ParamInfo]) -> torch.Tensor:
    """All parameters as one float64 CPU vector (for θ_0, θ_T and trajectory divergence)."""
    return torch.cat([p.tensor.detach().reshape(-1).to(torch.float64).cpu() for p in params])
