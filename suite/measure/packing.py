"""Parameters packed into one buffer, so that a snapshot of all of them is one copy.

The update-norm probe snapshots every trained tensor once per step. Copying N tensors one by one costs N
kernel launches — on a CPU about 5 µs each, more than the copying itself for a small network — where
copying one buffer costs one. The runner therefore packs a problem's parameters before it builds the
optimizer: the data of each tensor becomes a slice of one buffer per (device, dtype). The tensors stay the
same objects — only their ``.data`` moves — so the model, the task and the optimizer see no difference.

The buffer is laid out in :data:`CHUNK`-element chunks (512 bytes): each tensor starts on a chunk boundary
and the rest of its last chunk is zero and stays zero. So a tensor owns whole chunks, and the probe gets
the norms of all tensors at once from the norms of the chunks (one kernel). The 512-byte starts are also
the alignment of a tensor allocated on its own (CUDA's allocator rounds to 512 bytes, PyTorch's CPU
allocator to 64), so kernels meet the alignment they would meet anyway (tests/measure/test_probe.py:
training on packed parameters ends on the same bits).

A tensor is left where it is when packing could change what it means: not contiguous (a channels-last
convolution, a transposed view), sharing its storage with another tensor (tied or viewed weights), or alone
in its (device, dtype).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

ALIGN_BYTES = 512


def chunk(dtype: torch.dtype) -> int:
    """Elements of ``dtype`` in one chunk of the layout (:data:`ALIGN_BYTES`)."""
    return max(1, ALIGN_BYTES // torch.empty(0, dtype=dtype).element_size())


@dataclass
class Layout:
    """Where each tensor of a list lies in a chunked 1-D buffer."""

    offsets: list[int]
    """First element of each tensor (a multiple of the chunk)."""
    width: int
    """Elements of the buffer: every tensor's chunks."""
    owners: list[int]
    """For each chunk, the index of the tensor it belongs to."""

    @classmethod
    def of(cls, tensors: list[torch.Tensor]) -> Layout:
        """Tensors one after another in this order, each from a chunk boundary."""
        size = chunk(tensors[0].dtype)
        offsets, owners, end = [], [], 0
        for index, t in enumerate(tensors):
            offsets.append(end)
            chunks = -(-t.numel() // size)
            owners += [index] * chunks
            end += chunks * size
        return cls(offsets, end, owners)


PACKED = "_gsibench_packed"
"""The attribute through which a packed tensor holds its buffer (which keeps it, and its layout, known)."""


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
        layout = Layout.of(members)
        buffer = torch.zeros(layout.width, dtype=dtype, device=device)
        for t, offset in zip(members, layout.offsets):
            piece = buffer[offset : offset + t.numel()].view(t.shape)
            piece.copy_(t)
            t.data = piece
            setattr(t, PACKED, buffer)
        buffers.append(buffer)
    return buffers


def packed(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, Layout] | None:
    """``(buffer, layout)`` when ``tensors`` are, in this order, exactly the tensors of one buffer that
    :func:`pack_parameters` made; None otherwise."""
    if not tensors:
        return None
    buffer = getattr(tensors[0], PACKED, None)
    if buffer is None or buffer.dtype != tensors[0].dtype:
        return None
    layout = Layout.of(tensors)
    if layout.width != buffer.numel():
        return None
    for t, offset in zip(tensors, layout.offsets):
        if (t.untyped_storage().data_ptr() != buffer.untyped_storage().data_ptr() or not t.is_contiguous()
                or t.storage_offset() != buffer.storage_offset() + offset):
            return None
    return buffer, layout
