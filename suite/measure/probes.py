"""The update-norm probe: ‖R_k‖ measured from parameter deltas.

R_k = (θ_k − θ_{k+1}) / η_k, with η_k the learning rate of each parameter's group at step k. It is
measured from parameters, never from the optimizer's internals or ``p.grad`` (some optimizers
overwrite gradients inside ``step()``), so it works for every optimizer. One global L2 norm over all
trained parameters, plus one per role.

The probe sees ``(params_before, params_after, lr)`` and nothing else. It keeps snapshots of θ at
consecutive step boundaries in a small ring (up to :data:`BLOCK` steps, less for very large models), so
each step costs one snapshot — a single copy when the parameters are packed into one buffer
(:mod:`gsibench.measure.packing`, as the runner arranges), one copy per tensor otherwise — and no host
synchronisation. The snapshot taken after step k serves as θ_{k+1} "before" step k+1 unless the
parameters changed in between (their version counters or data pointers tell), in which case the ring is
emptied and θ snapshotted again. When the ring is full, one subtraction gives the steps' θ_k − θ_{k+1}
and one norm per tensor their lengths, which stay on the device; the learning rates (host numbers) go to
a list. Dividing by η and summing per role happen in bulk in :meth:`UpdateNormProbe.norms`, which the
runner calls only at its divergence checks and at the end.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gsibench.core.params import ROLES, ParamInfo
from gsibench.measure.packing import packed_span

SERIES_NAMES: tuple[str, ...] = ("update_norm",) + tuple(f"update_norm.{role}" for role in ROLES)
BLOCK = 16
"""Steps the ring holds at most before their norms are computed (one subtraction, one norm per tensor)."""

RING_BYTES = 64 * 2**20
"""Memory the ring may take; a model larger than RING_BYTES / 2 keeps one step in it."""


class _Snapshots:
    """Snapshots of the parameters of one dtype, one row of ``ring`` per step boundary."""

    def __init__(self, tensors: list[torch.Tensor], rows: int):
        self.tensors = tensors
        packed = packed_span(tensors)
        if packed is None:
            self.span, self.offsets, width = None, [], 0
            for t in tensors:
                self.offsets.append(width)
                width += t.numel()
        else:
            self.span, self.offsets = packed
            width = self.span.numel()
        self.pointers = [t.data_ptr() for t in tensors]
        self.ring = torch.empty(rows, width, dtype=tensors[0].dtype, device=tensors[0].device)

    def take(self, row: int, pointers: list[int]) -> None:
        """θ into ``ring[row]``: one copy of the packed span while the tensors still lie in it."""
        if self.span is not None and pointers == self.pointers:
            self.ring[row].copy_(self.span)
            return
        self.span = None  # an optimizer or task moved a tensor's data: copy tensor by tensor from now on
        target = self.ring[row]
        torch._foreach_copy_([target[o : o + t.numel()].view(t.shape) for o, t in zip(self.offsets, self.tensors)],
                             self.tensors)

    def step_norms(self, steps: int) -> torch.Tensor:
        """(steps, tensors): ‖θ_k − θ_{k+1}‖ of each tensor for the rows' first ``steps`` steps."""
        diff = self.ring[:steps] - self.ring[1 : steps + 1]
        return torch.stack([torch.linalg.vector_norm(diff[:, o : o + t.numel()], dim=1)
                            for o, t in zip(self.offsets, self.tensors)], dim=1)


class UpdateNormProbe:
    """Call :meth:`before` just before ``optimizer.step()`` and :meth:`after` just after."""

    def __init__(self, params: list[ParamInfo], optimizer: torch.optim.Optimizer, steps: int):
        self.tensors = [p.tensor for p in params]  # the parameters themselves: an optimizer may swap .data
        device = self.tensors[0].device
        self.role_index = torch.tensor([ROLES.index(p.role) for p in params], device=device)
        group_of = {id(t): g for g, group in enumerate(optimizer.param_groups) for t in group["params"]}
        self.group_index = np.array([group_of.get(id(t), 0) for t in self.tensors])
        self.groups = optimizer.param_groups
        self.raw = torch.full((steps, len(self.tensors)), math.nan, dtype=torch.float64, device=device)
        """‖θ_k − θ_{k+1}‖ per tensor and step (float64 copies of norms computed in each tensor's dtype)."""
        self.lr_rows: list[list[float]] = []
        """η_k per param group, one row per recorded step."""
        nbytes = sum(t.numel() * t.element_size() for t in self.tensors)
        self.depth = max(1, min(BLOCK, RING_BYTES // max(1, 2 * nbytes)))
        """Steps the ring holds."""
        columns: dict[torch.dtype, list[int]] = {}
        for i, t in enumerate(self.tensors):
            columns.setdefault(t.dtype, []).append(i)
        self.snapshots = [(cols, _Snapshots([self.tensors[i] for i in cols], self.depth + 1))
                          for cols in columns.values()]
        self.rows = 0
        """Ring rows filled: θ before steps ``first``, ``first + 1``, ...; ``rows − 1`` steps wait for norms."""
        self.first = 0
        self.state: tuple | None = None
        """(version counters, data pointers) of the parameters when the last snapshot was taken."""

    def _state(self) -> tuple[int, list[int]]:
        return sum(t._version for t in self.tensors), [t.data_ptr() for t in self.tensors]

    @torch.no_grad()
    def _take(self, row: int) -> None:
        self.state = self._state()
        pointers = self.state[1]
        for cols, snapshots in self.snapshots:
            snapshots.take(row, [pointers[i] for i in cols] if len(self.snapshots) > 1 else pointers)

    def before(self) -> None:
        if self.rows == 0:
            self._take(0)
            self.rows = 1
        elif self._state() != self.state:  # θ changed outside the optimizer's step: start from it
            self._flush()
            self._take(0)

    def after(self, step: int) -> None:
        """Record step ``step`` (steps come in order from 0)."""
        self._take(self.rows)
        self.rows += 1
        self.lr_rows.append([group["lr"] for group in self.groups])
        if self.rows > self.depth:
            self._flush()

    @torch.no_grad()
    def _flush(self) -> None:
        """Norms of the steps waiting in the ring into :attr:`raw`; the last snapshot becomes row 0."""
        steps = self.rows - 1
        if steps <= 0:
            return
        rows = slice(self.first, self.first + steps)
        for cols, snapshots in self.snapshots:
            norms = snapshots.step_norms(steps).to(self.raw.dtype)
            if len(self.snapshots) == 1:
                self.raw[rows] = norms
            else:
                self.raw[rows, cols] = norms
            snapshots.ring[0].copy_(snapshots.ring[steps])
        self.first += steps
        self.rows = 1

    @torch.no_grad()
    def norms(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of [‖R_k‖, ‖R_k‖ per role (hidden, input, output, vector)], float64."""
        if stop > self.first:
            self._flush()
        rates = np.array([[float(lr) for lr in row] for row in self.lr_rows[start:stop]]).reshape(stop - start, -1)
        lrs = torch.from_numpy(rates[:, self.group_index]).to(self.raw.device)
        scaled = self.raw[start:stop] / lrs
        per_role = torch.zeros(stop - start, len(ROLES), dtype=torch.float64, device=scaled.device)
        per_role.index_add_(1, self.role_index, scaled.square())
        return torch.cat([per_role.sum(dim=1, keepdim=True), per_role], dim=1).sqrt()


def flat_params(params: list[ParamInfo]) -> torch.Tensor:
    """All parameters as one float64 CPU vector (for θ_0, θ_T and trajectory divergence)."""
    return torch.cat([p.tensor.detach().reshape(-1).to(torch.float64).cpu() for p in params])
