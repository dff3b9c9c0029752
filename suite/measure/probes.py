"""The update-norm probe: ‖R_k‖ measured from parameter deltas.

R_k = (θ_k − θ_{k+1}) / η_k, with η_k the learning rate of each parameter's group at step k. It is
measured from parameters, never from the optimizer's internals or ``p.grad`` (some optimizers
overwrite gradients inside ``step()``), so it works for every optimizer. One global L2 norm over all
trained parameters, plus one per role.

The probe sees ``(params_before, params_after, lr)`` and nothing else. It keeps θ_k in one row per
parameter dtype, in the chunked layout of :mod:`gsibench.measure.packing` (each tensor on whole 512-byte
chunks, zeros after its end). When the runner has packed the parameters into that layout, a step costs
three kernels over one buffer and no host synchronisation: subtract θ_{k+1} (the buffer) from the row in
place, take the norm of every chunk of that difference into one row of a small block, and copy θ_{k+1}
into the row for the next step. Parameters that are not packed are first gathered tensor by tensor into a
second row. The row serves as θ "before" step k+1 unless the parameters changed in between (their
version counters or data pointers tell), in which case θ is copied again. Every :data:`BLOCK` steps the
chunks' squared norms are summed per tensor (one ``index_add_``) into the run's array of ‖θ_k − θ_{k+1}‖
per tensor, which stays on the device; the learning rates (host numbers) go to a list. Dividing by η and
summing per role happen in bulk in :meth:`UpdateNormProbe.norms`, which the runner calls only at its
divergence checks and at the end.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gsibench.core.params import ROLES, ParamInfo
from gsibench.measure.packing import Layout, chunk, packed

SERIES_NAMES: tuple[str, ...] = ("update_norm",) + tuple(f"update_norm.{role}" for role in ROLES)
BLOCK = 16
"""Steps whose chunk norms collect in the block before they are summed per tensor."""


class _Snapshots:
    """θ of the parameters of one dtype (the ``before`` row) and the norms of its changes, in the chunked
    layout."""

    def __init__(self, tensors: list[torch.Tensor], columns: list[int]):
        self.tensors = tensors
        self.columns = columns
        """The tensors' indices among all the probe's tensors."""
        found = packed(tensors)
        self.buffer, self.layout = found if found is not None else (None, Layout.of(tensors))
        self.pointers = [t.data_ptr() for t in tensors]
        dtype, device = tensors[0].dtype, tensors[0].device
        self.before = torch.zeros(self.layout.width, dtype=dtype, device=device)
        self.after: torch.Tensor | None = None
        """θ_{k+1} gathered tensor by tensor, when the parameters are not packed (made on first need)."""
        self.chunks = chunk(dtype)
        self.block = torch.zeros(BLOCK, len(self.layout.owners), dtype=dtype, device=device)
        """Norms of the chunks of θ_k − θ_{k+1}, a row per step."""
        self.owners = torch.tensor(self.layout.owners, device=device)
        self.state: tuple[int, list[int]] | None = None
        """(version counters, data pointers) of the tensors when θ was last copied."""

    def _state(self) -> tuple[int, list[int]]:
        return sum(t._version for t in self.tensors), [t.data_ptr() for t in self.tensors]

    def changed(self) -> bool:
        """Whether θ changed since it was last copied (or was never copied)."""
        return self._state() != self.state

    def _lies_packed(self) -> bool:
        """Note θ's state (it is about to be copied); whether the tensors still lie in the packed buffer."""
        self.state = self._state()
        if self.buffer is not None and self.state[1] != self.pointers:
            self.buffer = None  # an optimizer or task moved a tensor's data: copy tensor by tensor from now on
        return self.buffer is not None

    def _copy(self, target: torch.Tensor) -> None:
        """θ into ``target`` tensor by tensor (parameters not packed, or moved)."""
        with torch.no_grad():
            torch._foreach_copy_([target[o : o + t.numel()].view(t.shape)
                                  for o, t in zip(self.layout.offsets, self.tensors)], self.tensors)

    def restart(self) -> None:
        """θ into the ``before`` row."""
        if self._lies_packed():
            self.before.copy_(self.buffer)
        else:
            self._copy(self.before)

    def step(self, row: int) -> None:
        """After a step: the norms of the chunks of θ_k − θ_{k+1} into ``block[row]``; θ_{k+1} becomes θ_k.
        Packed, θ_{k+1} is the buffer itself: subtract it, take the norms, copy it (two rows of memory);
        otherwise θ_{k+1} is first gathered into a second row."""
        if self._lies_packed():
            after = self.buffer
        else:
            if self.after is None:
                self.after = torch.zeros_like(self.before)
            after = self.after
            self._copy(after)
        difference = self.before.sub_(after)
        torch.linalg.vector_norm(difference.view(-1, self.chunks), dim=1, out=self.block[row])
        self.before.copy_(after)

    def tensor_norms(self, rows: int) -> torch.Tensor:
        """(rows, tensors) float64: ‖θ_k − θ_{k+1}‖ of each tensor from the block's first ``rows`` rows."""
        squares = self.block[:rows].to(torch.float64).square()
        sums = torch.zeros(rows, len(self.tensors), dtype=torch.float64, device=squares.device)
        return sums.index_add_(1, self.owners, squares).sqrt()


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
        """‖θ_k − θ_{k+1}‖ per tensor and step."""
        self.lr_rows: list[list[float]] = []
        """η_k per param group, one row per recorded step."""
        columns: dict[torch.dtype, list[int]] = {}
        for i, t in enumerate(self.tensors):
            columns.setdefault(t.dtype, []).append(i)
        self.snapshots = [_Snapshots([self.tensors[i] for i in cols], cols) for cols in columns.values()]
        self.recorded = 0
        """Steps recorded; those from ``recorded − pending`` on are still in the block."""
        self.pending = 0

    # before() and after() run once a step, so they take no grad-mode context (~4 µs each): their kernels
    # work on the probe's own tensors, which do not require grad (the copy from parameters one by one
    # takes one).
    def before(self) -> None:
        for snapshots in self.snapshots:
            if snapshots.changed():  # the first step, or θ changed outside the optimizer's step: start from it
                snapshots.restart()

    def after(self, step: int) -> None:
        """Record step ``step`` (steps come in order from 0)."""
        for snapshots in self.snapshots:
            snapshots.step(self.pending)
        self.lr_rows.append([group["lr"] for group in self.groups])
        self.recorded, self.pending = step + 1, self.pending + 1
        if self.pending == BLOCK:
            self._flush()

    @torch.no_grad()
    def _flush(self) -> None:
        """The block's steps, summed per tensor, into :attr:`raw`."""
        if not self.pending:
            return
        rows = slice(self.recorded - self.pending, self.recorded)
        for snapshots in self.snapshots:
            self.raw[rows, snapshots.columns] = snapshots.tensor_norms(self.pending)
        self.pending = 0

    @torch.no_grad()
    def norms(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of [‖R_k‖, ‖R_k‖ per role (hidden, input, output, vector)], float64."""
        if stop > self.recorded - self.pending:
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
