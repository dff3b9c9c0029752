"""The extra tasks: digits-cnn, char-gpt, wikitext-gpt, cifar-resnet18, reddi, finite-sum, and the
sinusoidal initialization. Data-on-disk tasks run on tiny files written to ``tmp_path``."""

import hashlib
import math
import pickle
import statistics

import pytest
import torch
from torch import nn

from gsibench.battery.spec import Battery
from gsibench.core.errors import UsageError
from gsibench.execution.runner import run_cell
from gsibench.tasks import registry
from gsibench.tasks.char_gpt import stdlib_text
from gsibench.tasks.cifar import augment, read_cifar
from gsibench.tasks.finite_sum import component_loss, objective, optimal_value
from gsibench.tasks.init import initialize
from tests.helpers import TEXT, TINY_GPT, sgd_losses

CPU = torch.device("cpu")

def build(name, seed, options):
    task = registry.get(name)
    return task.build(seed, CPU, **task.resolve_options(options))


def snapshot(problem):
    return [p.tensor.detach().clone() for p in problem.params]


NEW_TASKS = ["digits-cnn", "char-gpt", "wikitext-gpt", "cifar-resnet18", "reddi", "finite-sum"]


def test_new_tasks_are_registered():
    assert set(NEW_TASKS) <= set(registry.available())


@pytest.mark.parametrize("name", ["digits-cnn", "char-gpt", "wikitext-gpt", "cifar-resnet18"])
def test_different_seeds_give_different_inits(name, tiny_options):
    a, b = snapshot(build(name, 0, tiny_options[name])), snapshot(build(name, 1, tiny_options[name]))
    assert not all(torch.equal(x, y) for x, y in zip(a, b))


def test_different_seeds_give_different_data_for_the_synthetic_tasks():
    slopes = [[build("reddi", seed, {}).slope(k) for k in range(1000)] for seed in (0, 1)]
    assert slopes[0] != slopes[1] and 1010.0 in slopes[0]
    order = [[build("finite-sum", seed, {"n": 5}).component(k) for k in range(20)] for seed in (0, 1)]
    assert order[0] != order[1]


@pytest.mark.parametrize("name, options, lr", [
    ("digits-cnn", {}, 3e-3),
    ("char-gpt", {"batch_size": 8}, 1e-2),
])
def test_a_few_adam_steps_reduce_the_loss_on_a_fixed_batch(name, options, lr):
    problem = build(name, 0, options)
    before = problem.loss(0).item()
    optimizer = torch.optim.Adam([p.tensor for p in problem.params], lr=lr)
    for k in range(25):
        optimizer.zero_grad()
        problem.loss(k).backward()
        optimizer.step()
    assert problem.loss(0).item() < 0.8 * before


def test_digits_cnn_roles():
    roles = {p.name: p.role for p in build("digits-cnn", 0, {}).params}
    assert roles == {"1.weight": "input", "1.bias": "vector", "3.weight": "hidden", "3.bias": "vector",
                     "7.weight": "output", "7.bias": "vector"}


# --- sinusoidal initialization -------------------------------------------------------------------

def raw_sine(i, j, n_out, fan_in):
    return math.sin((i + 1) * (2 * math.pi * j / fan_in + 2 * math.pi / n_out))


ONE_ROUNDING = 2.0**-24 + 1e-12
"""A float64 value stored as float32 is within a relative 2^-24 of it (plus float64's own last bits)."""


def test_sinusoidal_linear_matches_the_formula_by_hand():
    layer = nn.Linear(3, 4)
    initialize(layer, "sinusoidal")
    values = [raw_sine(i, j, 4, 3) for i in range(4) for j in range(3)]
    amplitude = math.sqrt(2) / math.sqrt(statistics.variance(values) * 3)
    assert layer.weight[1, 2].item() == pytest.approx(amplitude * math.sin(2 * (4 * math.pi / 3 + math.pi / 2)),
                                                      rel=ONE_ROUNDING)
    assert layer.weight[3, 0].item() == pytest.approx(amplitude * raw_sine(3, 0, 4, 3), rel=ONE_ROUNDING)
    assert torch.count_nonzero(layer.bias) == 0


def test_sinusoidal_conv_uses_the_flattened_fan_in_and_has_he_std():
    conv = nn.Conv2d(2, 3, kernel_size=3)
    initialize(conv, "sinusoidal")
    flat = conv.weight.detach().reshape(3, 18)
    values = [raw_sine(i, j, 3, 18) for i in range(3) for j in range(18)]
    amplitude = math.sqrt(2) / math.sqrt(statistics.variance(values) * 18)
    assert flat[2, 5].item() == pytest.approx(amplitude * raw_sine(2, 5, 3, 18), rel=ONE_ROUNDING)
    big = nn.Linear(256, 128)
    initialize(big, "sinusoidal")
    # float64 statistics of float32 weights, each within a relative 2^-24 of its exact value
    assert big.weight.double().std().item() == pytest.approx(math.sqrt(2 / 256), rel=2 * ONE_ROUNDING)


def test_sinusoidal_is_deterministic_and_leaves_embeddings_and_norms_alone():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(7, 2))
    torch.manual_seed(1)
    b = nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(7, 2))
    initialize(a, "sinusoidal")
    initialize(b, "sinusoidal")
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    plain = build("char-gpt", 0, TINY_GPT)
    sine = build("char-gpt", 0, {**TINY_GPT, "init": "sinusoidal"})
    plain_params = {p.name: p.tensor for p in plain.params}
    sine_params = {p.name: p.tensor for p in sine.params}
    for name in ("wte.weight", "wpe.weight", "blocks.0.ln_1.weight"):
        assert torch.equal(plain_params[name], sine_params[name])
    assert not torch.equal(plain_params["blocks.0.attn.c_attn.weight"], sine_params["blocks.0.attn.c_attn.weight"])


def test_sinusoidal_leaves_a_weight_whose_pattern_vanishes():
    layer = nn.Linear(2, 1)  # sin(2π) = sin(3π) = 0: no pattern to scale
    before = layer.weight.detach().clone()
    initialize(layer, "sinusoidal")
    assert torch.equal(layer.weight, before) and torch.count_nonzero(layer.bias) == 0


def test_unknown_init_lists_the_valid_ones():
    with pytest.raises(UsageError, match="default, sinusoidal"):
        initialize(nn.Linear(2, 2), "orthogonal")
    with pytest.raises(UsageError, match="sinusoidal"):
        build("digits-cnn", 0, {"init": "xavier"})


# --- char-gpt -------------------------------------------------------------------------------------

def test_char_gpt_default_corpus_is_the_stdlib_topics_text():
    problem = build("char-gpt", 0, TINY_GPT)
    text = stdlib_text()
    assert problem.info["text_sha256"] == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert int(problem.info["text_chars"]) == len(text) > 100_000
    assert int(problem.info["vocab_size"]) == len(set(text)) == problem.model.lm_head.out_features
    roles = {p.name: p.role for p in problem.params}
    assert roles["wte.weight"] == roles["wpe.weight"] == "input"
    assert roles["lm_head.weight"] == "output"
    assert roles["blocks.0.attn.c_attn.weight"] == roles["blocks.0.mlp.c_proj.weight"] == "hidden"
    assert roles["blocks.0.attn.c_attn.bias"] == roles["ln_f.weight"] == "vector"


def test_char_gpt_reads_a_user_text_and_hashes_it(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT * 10, encoding="utf-8")
    problem = build("char-gpt", 0, {**TINY_GPT, "text": str(path)})
    assert problem.info["text_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert problem.info["text_sha256"] != build("char-gpt", 0, TINY_GPT).info["text_sha256"]
    assert problem.model.lm_head.out_features == len(set(TEXT))
    assert math.isfinite(problem.loss(0).item())
    path.write_text(TEXT * 11, encoding="utf-8")
    assert build("char-gpt", 0, {**TINY_GPT, "text": str(path)}).info["text_chars"] == str(len(TEXT) * 11)


def test_char_gpt_rejects_a_missing_or_too_short_text(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        build("char-gpt", 0, {"text": str(tmp_path / "absent.txt")})
    short = tmp_path / "short.txt"
    short.write_text("abc" * 10, encoding="utf-8")
    with pytest.raises(UsageError, match="block_size"):
        build("char-gpt", 0, {"text": str(short)})
    with pytest.raises(UsageError, match="multiple of n_head"):
        build("char-gpt", 0, {"n_embd": 30, "n_head": 4})


def test_char_gpt_validation_loss_is_deterministic_and_independent_of_the_seed():
    a, b = build("char-gpt", 0, TINY_GPT), build("char-gpt", 0, TINY_GPT)
    assert a.evaluate() == b.evaluate()
    assert a.evaluate() == pytest.approx(math.log(int(a.info["vocab_size"])), rel=0.05)


# --- wikitext-gpt ---------------------------------------------------------------------------------

def test_wikitext_is_byte_level_and_logs_file_hashes(wikitext_dir):
    problem = build("wikitext-gpt", 0, {**TINY_GPT, "data_dir": str(wikitext_dir)})
    train = (wikitext_dir / "wikitext-2-raw" / "wiki.train.raw").read_bytes()
    assert problem.model.lm_head.out_features == 256
    assert problem.info["train_sha256"] == hashlib.sha256(train).hexdigest()
    assert problem.info["train_bytes"] == str(len(train)) != str(len(TEXT * 40))  # multi-byte characters


def test_wikitext_found_by_env_var_and_tokens_files(tmp_path, monkeypatch):
    folder = tmp_path / "wikitext-2"
    folder.mkdir()
    (folder / "wiki.train.tokens").write_text(TEXT * 20, encoding="utf-8")
    (folder / "wiki.valid.tokens").write_text(TEXT * 5, encoding="utf-8")
    task = registry.get("wikitext-gpt")
    monkeypatch.setenv("GSIBENCH_DATA", str(tmp_path))
    assert task.unavailable(task.resolve_options()) is None
    assert build("wikitext-gpt", 0, TINY_GPT).info["train_file"] == "wiki.train.tokens"


def test_wikitext_without_files_is_skipped_with_instructions(tmp_path, monkeypatch):
    monkeypatch.delenv("GSIBENCH_DATA", raising=False)
    task = registry.get("wikitext-gpt")
    reason = task.unavailable(task.resolve_options())
    assert "wiki.train.raw" in reason and "GSIBENCH_DATA" in reason and "never downloads" in reason
    assert str(tmp_path) in task.unavailable(task.resolve_options({"data_dir": str(tmp_path)}))
    with pytest.raises(UsageError, match="wiki.train.raw"):
        build("wikitext-gpt", 0, {"data_dir": str(tmp_path)})
    battery = Battery(optimizers=["adam"], tasks=["wikitext-gpt"], perturbations=["none"], seeds=[0])
    cells, skipped = battery.plan()
    assert cells == [] and skipped[0][0] == "wikitext-gpt"


# --- cifar-resnet18 -------------------------------------------------------------------------------

def test_cifar_roles_and_one_training_step(cifar_dir):
    problem = build("cifar-resnet18", 0, {"data_dir": str(cifar_dir), "batch_size": 4, "verify": False})
    roles = {p.name: p.role for p in problem.params}
    assert roles["conv1.weight"] == "input" and roles["fc.weight"] == "output"
    assert roles["layer1.0.conv1.weight"] == roles["layer2.0.downsample.0.weight"] == "hidden"
    assert roles["bn1.weight"] == roles["fc.bias"] == "vector"
    assert problem.model.conv1.stride == (1, 1) and isinstance(problem.model.maxpool, nn.Identity)
    before = snapshot(problem)
    sgd_losses(problem, steps=1)
    assert any(not torch.equal(a, b) for a, b in zip(before, snapshot(problem)))
    assert len(problem.y_train) == 30 and len(problem.y_val) == 10
    assert 0.0 <= problem.evaluate() <= 1.0


def test_cifar_pickles_read_like_torchvision(cifar_dir, monkeypatch):
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    ours, theirs = read_cifar(cifar_dir, "cifar10", False), read_cifar(cifar_dir, "cifar10", True)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    raw = pickle.loads((cifar_dir / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    assert ours[0][0, 1, 0, 2] == raw["data"][0, 1024 + 2]  # green channel, row 0, column 2


def test_cifar_checks_md5_by_default(cifar_dir):
    with pytest.raises(UsageError, match="MD5"):
        build("cifar-resnet18", 0, {"data_dir": str(cifar_dir), "batch_size": 4})


def test_cifar_without_data_is_skipped_with_instructions(tmp_path, monkeypatch, cifar_dir):
    monkeypatch.delenv("GSIBENCH_DATA", raising=False)
    task = registry.get("cifar-resnet18")
    reason = task.unavailable(task.resolve_options({"data_dir": str(tmp_path / "empty")}))
    assert "cifar-10-batches-py" in reason and "cifar-10-python.tar.gz" in reason and "never downloads" in reason
    assert "cifar-100-python" in task.unavailable(task.resolve_options({"dataset": "cifar100"}))
    with pytest.raises(UsageError, match="cifar10, cifar100"):
        task.unavailable(task.resolve_options({"dataset": "cifar-10"}))
    assert task.unavailable(task.resolve_options({"data_dir": str(cifar_dir)})) is None
    assert task.unavailable(task.resolve_options({"data_dir": str(cifar_dir / "cifar-10-batches-py")})) is None


def test_augmentation_is_a_padded_crop_and_flip_fixed_by_the_generator():
    images = torch.rand(5, 3, 32, 32)
    out = augment(images, torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    shifts = torch.randint(0, 9, (2, 5), generator=generator)
    flips = torch.rand(5, generator=generator) < 0.5
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for b in range(5):
        dy, dx = int(shifts[0, b]), int(shifts[1, b])
        expected = padded[b, :, dy:dy + 32, dx:dx + 32]
        assert torch.equal(out[b], expected.flip(2) if flips[b] else expected)
    assert torch.equal(out, augment(images, torch.Generator().manual_seed(3)))


# --- reddi ----------------------------------------------------------------------------------------

def run_adam(problem, steps, lr, betas):
    optimizer = torch.optim.Adam([p.tensor for p in problem.params], lr=lr, betas=betas)
    trace = []
    for k in range(steps):
        optimizer.zero_grad()
        problem.loss(k).backward()
        optimizer.step()
        if hasattr(problem, "after_step"):
            problem.after_step()
        trace.append(float(problem.x.detach().sum()))
    return trace


def test_reddi_projection_keeps_x_in_the_interval():
    trace = run_adam(build("reddi", 0, {}), 300, lr=0.5, betas=(0.9, 0.999))
    assert all(-1.0 <= x <= 1.0 for x in trace) and max(abs(x) for x in trace) == 1.0


def test_reddi_through_the_runner_calls_after_step():
    battery = Battery(optimizers=["adam[lr=0.5]"], tasks=["reddi"], perturbations=["none"], seeds=[0], steps=40)
    result = run_cell(battery.plan()[0][0])
    assert result.status == "finished"
    assert -1.0 <= float(result.final_params[0]) <= 1.0 and result.final_params[0] in (-1.0, 1.0)


def test_reddi_cyclic_adam_fails_where_sgd_converges():
    adam = build("reddi", 0, {"kind": "cyclic", "C": 3.0})
    run_adam(adam, 2000, lr=0.01, betas=(0.0, 0.1))  # β2 = 1/(1 + C²): Reddi et al. Theorem 1
    assert adam.evaluate() > 1.5
    sgd = build("reddi", 0, {"kind": "cyclic", "C": 3.0})
    sgd_losses(sgd, steps=2000, lr=0.01)
    sgd.after_step()
    assert sgd.evaluate() < 0.05
    with pytest.raises(UsageError, match="C > 2"):
        build("reddi", 0, {"kind": "cyclic", "C": 2.0})


# --- finite-sum -----------------------------------------------------------------------------------

def test_finite_sum_components_add_up_to_the_objective():
    for n in (2, 5, 20):
        for value in (-3.0, -1.0 - 1.0 / n, -1.0, 0.0, 2.5):
            x = torch.tensor(value, dtype=torch.float64)
            assert float(sum(component_loss(x, i, n) for i in range(n))) == pytest.approx(float(objective(x, n)))
        x_star = torch.tensor(-1.0 - 1.0 / n, dtype=torch.float64)
        assert float(objective(x_star, n)) == pytest.approx(optimal_value(n))
        assert float(objective(x_star + 1e-3, n)) > optimal_value(n) < float(objective(x_star - 1e-3, n))


def test_finite_sum_sampling():
    problem = build("finite-sum", 3, {"n": 5})
    for epoch in range(4):
        assert sorted(problem.component(5 * epoch + i) for i in range(5)) == list(range(5))
    drawn = [build("finite-sum", 3, {"n": 5, "sampling": "replacement"}).component(k) for k in range(2000)]
    assert 0.15 < drawn.count(0) / len(drawn) < 0.25
    with pytest.raises(UsageError, match="shuffle"):
        build("finite-sum", 0, {"sampling": "sorted"})


def final_gap(n, betas, steps=2000, lr=0.1):
    problem = build("finite-sum", 0, {"n": n})
    run_adam(problem, steps, lr, betas)
    return problem.evaluate(), problem.initial_suboptimality


@pytest.mark.parametrize("n", [5, 20])
def test_finite_sum_adam_converges_for_large_beta2(n):
    gap, initial = final_gap(n, (0.9, 0.999))
    assert gap < 0.5 * initial


def test_finite_sum_divergence_region_grows_with_n():
    cells = [(5, (0.0, 0.9)), (10, (0.0, 0.9)), (10, (0.9, 0.9)), (20, (0.9, 0.9))]
    diverged = {}
    for n, betas in cells:
        gap, initial = final_gap(n, betas)
        diverged[n, betas] = gap > initial
    assert diverged == {(5, (0.0, 0.9)): False, (10, (0.0, 0.9)): True,
                        (10, (0.9, 0.9)): False, (20, (0.9, 0.9)): True}
