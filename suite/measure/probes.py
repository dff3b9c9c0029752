"""The update-norm probe: ‖R_k‖ measured from parameter deltas.

R_k = (θ_k − θ_{k+1}) / η_k, with η_k the learning rate of each parameter's group at step k. It is
measured from parameters, never from the optimizer's internals or ``p.grad`` (some optimizers
overwrite gradients inside ``step()``), so it works for every optimizer. One global L2 norm over all
trained parameters, plus one per role.

The probe sees ``(params_before, params_after, lr)`` and nothing else. Per step it costs three
multi-tensor (``_foreach``) kernels — copy, subtract, norm — and a stack of the norms into the step's row
of one preallocated array, and no host synchronisation: the raw norms ‖θ_k − θ_{k+1}‖ per tensor stay on
the device and the
learning rates (host numbers) go to a list; dividing by η and summing per role happen in bulk
in :meth:`UpdateNormProbe.norms`, which the runner calls only at its divergence checks and at the end.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gsibench.core.params import ROLES, ParamInfo

SERIES_NAMES: tuple[str, ...] = ("update_norm",) + tuple(f"update_norm.{role}" for role in ROLES)
class UpdateNormProbe:
    """Call :meth:`before` just before ``optimizer.step()`` and :meth:`after` just after."""

    def __init__(self, params: list[ParamInfo], optimizer: torch.optim.Optimizer, steps: int):
        self.tensors = [p.tensor for p in params]  # the parameters themselves: an optimizer may swap .data
        self.buffers = [torch.empty_like(t, memory_format=torch.preserve_format) for t in self.tensors]
        device = self.tensors[0].device
        self.role_index = torch.tensor([ROLES.index(p.role) for p in params], device=device)
        group_of = {id(t): g for g, group in enumerate(optimizer.param_groups) for t in group["params"]}
        self.group_index = np.array([group_of.get(id(t), 0) for t in self.tensors])
        self.groups = optimizer.param_groups
        self.raw = torch.full((steps, len(self.tensors)), math.nan, dtype=torch.float64, device=device)
        """‖θ_k − θ_{k+1}‖ per tensor and step, written one row per step by a single kernel."""
        self.lr_rows: list[list[float]] = []
        """η_k per param group, one row per recorded step."""

    @torch.no_grad()
    def before(self) -> None:
        torch._foreach_copy_(self.buffers, self.tensors)

    @torch.no_grad()
    def after(self, step: int) -> None:
        """Record step ``step`` (steps come in order from 0)."""
        torch._foreach_sub_(self.buffers, self.tensors)
        torch.stack(torch._foreach_norm(self.buffers), out=self.raw[step])
        self.lr_rows.append([group["lr"] for group in self.groups])

    @torch.no_grad()
    def norms(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of [‖R_k‖, ‖R_k‖ per role (hidden, input, output, vector)], float64."""
        rates = np.array([[float(lr) for lr in row] for row in self.lr_rows[start:stop]]).reshape(stop - start, -1)
        lrs = torch.from_numpy(rates[:, self.group_index]).to(self.raw.device)
        scaled = self.raw[start:stop] / lrs
        per_role = torch.zeros(stop - start, len(ROLES), dtype=torch.float64, device=scaled.device)
        per_role.index_add_(1, self.role_index, scaled.square())
        return torch.cat([per_role.sum(dim=1, keepdim=True), per_role], dim=1).sqrt()


def flat_params(params: list[ParamInfo]) -> torch.Tensor:
    """All parameters as one float64 CPU vector (for θ_0, θ_T and trajectory divergence)."""
    return torch.cat([p.tensor.detach().reshape(-1).to(torch.float64).cpu() for p in params])
