"""Parameters packed into one buffer, so that a snapshot of all of them is one copy.

The update-norm probe snapshots every trained tensor once per step. Copying N tensors one by one costs N
kernel launches — on a CPU about 5 µs each, more than the copying itself for a small network — where
copying one buffer costs one. The runner therefore packs a problem's parameters before it builds the
optimizer: the data of each tensor becomes a slice of one buffer per (device, dtype), each slice starting
on a 512-byte boundary, the alignment of a tensor allocated on its own (CUDA's allocator rounds to 512
bytes, PyTorch's CPU allocator to 64), so that kernels meet the same alignment and compute the same bits.
The tensors stay the same objects — only their ``.data`` moves — so the model, the task and the optimizer
see no difference.

A tensor is left where it is when packing could change what it means: not contiguous (a channels-last
convolution, a transposed view), sharing its storage with another tensor (tied or viewed weights), or alone
in its (device, dtype).
"""

from __future__ import annotations

from collections import defaultdict

import torch

ALIGN_BYTES = 512


@torch.no_grad()
def pack_parameters(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Move the data of ``tensors`` into one buffer per (device, dtype) where it can go (see the module
    docstring); returns the buffers made. Values are copied exactly."""
    storages: dict[tuple, int] = defaultdict(int)
    for t in tensors:
        storages[(t.device, t.untyped_storage().data_ptr())] += 1
    groups: dict[tuple, list[torch.Tensor]] = defaultdict(list)
    for t in tensors:
        if t.is_contiguous() and storages[(t.device, t.untyped_storage().data_ptr())] == 1 and t.numel():
            groups[(t.device, t.dtype)].append(t)
    buffers = []
    for (device, dtype), members in groups.items():
        if len(members) < 2:
            continue
        align = max(1, ALIGN_BYTES // members[0].element_size())
        offsets, end = [], 0
        for t in members:
            offsets.append(end)
            end += -(-t.numel() // align) * align
        buffer = torch.zeros(end, dtype=dtype, device=device)
        for t, offset in zip(members, offsets):
            piece = buffer[offset : offset + t.numel()].view(t.shape)
            piece.copy_(t)
            t.data = piece
        buffers.append(buffer)
    return buffers


def packed_span(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]] | None:
    """``(span, offsets)`` when ``tensors`` lie in one storage, each contiguous, without overlap, in a
    stretch not much longer than they are (twice their size, plus the alignment padding of
    :func:`pack_parameters`): ``span`` is one 1-D tensor over that stretch of the storage and ``offsets[i]``
    where tensor i starts in it. None otherwise (copy them one by one)."""
    if not tensors or not all(t.is_contiguous() for t in tensors):
        return None
    storage = tensors[0].untyped_storage()
    if any(t.untyped_storage().data_ptr() != storage.data_ptr() or t.dtype != tensors[0].dtype for t in tensors):
        return None
    starts = [t.storage_offset() for t in tensors]
    bounds = sorted((s, s + t.numel()) for s, t in zip(starts, tensors))
    if any(a_end > b_start for (_, a_end), (b_start, _) in zip(bounds, bounds[1:])):
        return None
    low, high = bounds[0][0], bounds[-1][1]
    padding = len(tensors) * ALIGN_BYTES // tensors[0].element_size()
    if high - low > 2 * sum(t.numel() for t in tensors) + padding:
        return None
    span = torch.empty(0, dtype=tensors[0].dtype, device=tensors[0].device)
    span.set_(storage, low, (high - low,), (1,))
    return span, [s - low for s in starts]
