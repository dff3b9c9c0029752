"""The update-norm probe and parameter packing: ‖θ_k − θ_{k+1}‖ of every step, however the parameters lie,
and training on packed parameters is training as before, bit for bit."""

import numpy as np
import pytest
import torch
from torch import nn

from gsibench.battery.spec import Battery
from gsibench.core.params import ParamInfo, infer_roles
from gsibench.measure import probes
from gsibench.measure.packing import ALIGN_BYTES, pack_parameters, packed
from gsibench.measure.probes import UpdateNormProbe
from gsibench.optimizers import registry as optimizers
from gsibench.tasks import registry as tasks

U32, U64 = 2.0**-24, 2.0**-53
"""Unit roundoff of float32 and float64."""


def model(dtype=torch.float32) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(dtype)


def test_packing_moves_every_tensor_into_one_aligned_buffer_and_keeps_its_values():
    net = model()
    params = list(net.parameters())
    values = [p.detach().clone() for p in params]
    (buffer,) = pack_parameters(params)
    assert [p is q for p, q in zip(params, net.parameters())] == [True] * 4  # same objects, new data
    assert all(torch.equal(p, v) for p, v in zip(params, values))
    assert all(p.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr() for p in params)
    assert all((p.data_ptr() - buffer.data_ptr()) % ALIGN_BYTES == 0 for p in params)
    found, layout = packed(params)
    assert found is buffer and [buffer[o] for o in layout.offsets] == [p.reshape(-1)[0] for p in params]
    ends = [o + p.numel() for o, p in zip(layout.offsets, params)]
    assert all(not buffer[end:start].any() for end, start in zip(ends, layout.offsets[1:] + [buffer.numel()]))
    assert packed(params[1:]) is None and packed(params[::-1]) is None  # only the buffer's own tensors, in order


def test_packing_leaves_alone_what_it_would_change():
    """Not contiguous, sharing storage, alone in its dtype: left where it is."""
    weight = torch.randn(4, 6).T  # a transposed view: not contiguous
    base = torch.randn(10)
    first, second = base[:5], base[5:]  # two tensors of one storage
    alone = torch.randn(3, dtype=torch.float64)
    pointers = [t.data_ptr() for t in (weight, first, second, alone)]
    assert pack_parameters([weight, first, second, alone]) == []
    assert [t.data_ptr() for t in (weight, first, second, alone)] == pointers


def train(net, params, steps, probe_of=None, between=None, swap_at=None):
    """SGD with a moving lr on ``net``; returns the probe's norms and ‖θ_k − θ_{k+1}‖ measured by hand."""
    infos = infer_roles(net)
    optimizer = torch.optim.SGD(params, lr=0.1)
    probe = UpdateNormProbe(infos, optimizer, steps) if probe_of is None else probe_of(infos, optimizer, steps)
    x = torch.randn(16, 5, dtype=params[0].dtype, generator=torch.Generator().manual_seed(1))
    by_hand = []
    for k in range(steps):
        optimizer.param_groups[0]["lr"] = 0.1 / (1 + k)
        optimizer.zero_grad()
        net(x).square().mean().backward()
        if between is not None:
            between(k)
        before = [p.detach().clone() for p in params]
        probe.before()
        optimizer.step()
        if swap_at == k:  # an optimizer that gives a tensor new storage
            params[0].data = params[0].data.clone()
        probe.after(k)
        by_hand.append([float(torch.linalg.vector_norm(b - p.detach())) for b, p in zip(before, params)])
        if k % 7 == 6:  # the runner's checks read norms now and then
            probe.norms(0, k + 1)
    rows = probe.norms(0, steps).numpy()
    lrs = np.array([0.1 / (1 + k) for k in range(steps)])
    expected = np.sqrt(np.square(np.array(by_hand)).sum(axis=1)) / lrs
    return rows[:, 0], expected


def tolerance(params, dtype=torch.float32):
    """The probe and the hand take norms of the same float differences, the probe chunk by chunk (and the
    chunks' squares summed in float64), the hand in one go: each is within (n + 1)·u of the exact norm (the
    recursive-summation bound, whatever the order), so they are within twice that of each other."""
    n = sum(p.numel() for p in params)
    return 2 * (n + 1) * (U64 if dtype == torch.float64 else U32)


@pytest.mark.parametrize("block", [probes.BLOCK, 1, 3])
@pytest.mark.parametrize("pack", [True, False])
def test_probe_gives_every_steps_delta(monkeypatch, block, pack):
    monkeypatch.setattr(probes, "BLOCK", block)
    net = model()
    params = list(net.parameters())
    if pack:
        pack_parameters(params)
    measured, expected = train(net, params, 37)
    np.testing.assert_allclose(measured, expected, rtol=tolerance(params), atol=0)


def test_probe_over_parameters_of_two_dtypes():
    net = model()
    net[2].to(torch.float64)
    net[0].to(torch.float64)
    net[0].bias.data = net[0].bias.data.float()  # float32 bias among float64 weights
    net[2].bias.data = net[2].bias.data.float()

    def forward(x):  # the layers cast what they get to their own dtype
        h = torch.tanh(nn.functional.linear(x.double(), net[0].weight, net[0].bias.double()))
        return nn.functional.linear(h, net[2].weight, net[2].bias.double())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = net

        def forward(self, x):
            return forward(x)

    wrapper = Net()
    params = list(wrapper.parameters())
    pack_parameters(params)
    measured, expected = train(wrapper, params, 20)
    np.testing.assert_allclose(measured, expected, rtol=tolerance(params), atol=0)


def test_probe_follows_an_optimizer_that_moves_a_tensor():
    net = model()
    params = list(net.parameters())
    pack_parameters(params)
    measured, expected = train(net, params, 20, swap_at=4)
    np.testing.assert_allclose(measured, expected, rtol=tolerance(params), atol=0)


def test_a_change_between_steps_is_not_an_update():
    """θ moved outside ``optimizer.step()`` (a task projecting its weights in ``loss``): R_k covers the step only."""
    net = model()
    params = list(net.parameters())
    pack_parameters(params)

    def shift(k):
        if k % 5 == 2:
            with torch.no_grad():
                params[1].add_(1.0)

    measured, expected = train(net, params, 20, between=shift)
    np.testing.assert_allclose(measured, expected, rtol=tolerance(params), atol=0)


@pytest.mark.parametrize("task, optimizer, options", [("digits-mlp", "adam", {}), ("digits-cnn", "muon", {}),
                                                      ("char-gpt", "scion", {"n_layer": 1})])
def test_training_on_packed_parameters_is_bit_identical(task, optimizer, options):
    """Packing moves data to 512-byte-aligned slices: kernels see the alignment of a tensor of its own and
    round the same, so 20 steps end on the very same bits."""
    (cell,), _ = Battery(optimizers=[optimizer], tasks=[task], perturbations=[], seeds=[0]).plan()
    finals = []
    for pack in (False, True):
        torch.manual_seed(0)
        problem = tasks.get(task).build(0, torch.device("cpu"), **options)
        tensors = [p.tensor for p in problem.params]
        if pack:
            assert pack_parameters(tensors)
        opt = optimizers.get(optimizer).factory(problem.params, **dict(cell.hparams))
        for k in range(20):
            opt.zero_grad(set_to_none=True)
            problem.loss(k).backward()
            opt.step()
        finals.append(torch.cat([t.detach().reshape(-1) for t in tensors]))
    assert torch.equal(*finals)


def test_a_probe_on_unpacked_parameters_copies_them_one_by_one():
    net = model()
    infos = [ParamInfo(f"p{i}", p, "vector") for i, p in enumerate(net.parameters())]
    probe = UpdateNormProbe(infos, torch.optim.SGD(net.parameters(), lr=0.1), 4)
    assert all(snapshots.buffer is None for snapshots in probe.snapshots)
    pack_parameters([p.tensor for p in infos])
    probe = UpdateNormProbe(infos, torch.optim.SGD(net.parameters(), lr=0.1), 4)
    assert all(snapshots.buffer is not None for snapshots in probe.snapshots)
