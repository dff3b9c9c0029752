"""A small character-level GPT on a text that every Python installation carries.

The model is a decoder-only transformer in the style of nanoGPT (Karpathy, ``model.py``): token and
position embeddings, ``n_layer`` pre-norm blocks of causal self-attention and a GELU MLP, a final
LayerNorm and a linear head. Unlike nanoGPT the head is *not* tied to the token embedding, so the
two keep distinct roles (``input`` and ``output``) for Muon and Scion. No dropout: a run is a
function of the seed alone.

The default corpus is the text of Python's standard-library documentation topics
(``pydoc_data.topics.topics``, the values joined in sorted-key order): about 465,000 characters of
English prose and code that ship with CPython, so nothing is downloaded. It changes between Python
versions, which is why its SHA-256 is logged with every run (``problem.info``). ``text=PATH`` trains
on any UTF-8 file instead.

Tokens are characters; the vocabulary is the sorted set of characters of the whole text. The first
90% (by position) trains, the last 10% validates. Step k trains on ``batch_size`` windows whose
starts are drawn from ``step_generator(seed, k)``. Score: validation loss (mean cross-entropy in nats
per character) on a fixed, seed-independent set of evenly spaced validation windows.
"""

from __future__ import annotations

import hashlib
import math
import platform
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gsibench.core.errors import UsageError
from gsibench.core.params import ParamInfo, infer_roles
from gsibench.tasks.base import Problem, Score, Task, step_generator
from gsibench.tasks.init import INITS
from gsibench.tasks.options import Option
from gsibench.tasks.registry import register

EVAL_WINDOWS = 128
"""Validation windows scored by ``evaluate()`` for char-gpt."""


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int = 64
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64

    def __post_init__(self) -> None:
        for key in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if not (isinstance(getattr(self, key), int) and getattr(self, key) > 0):
                raise UsageError(f"{key} must be a positive integer, got {getattr(self, key)!r}")
        if self.n_embd % self.n_head:
            raise UsageError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, channels = x.shape
        q, k, v = self.c_attn(x).split(channels, dim=2)
        # (B, T, C) -> (B, heads, T, C / heads)
        q, k, v = (t.view(batch, time, self.n_head, channels // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(batch, time, channels))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's model without dropout or weight tying; its init is nanoGPT's (normal, std 0.02,
    residual projections scaled by 1/√(2·n_layer), zero biases)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> logits (B, T, vocab)."""
        position = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(position)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


EMBEDDINGS = ("wte.weight", "wpe.weight")


def gpt_roles(model: GPT) -> list[ParamInfo]:
    """Token and position embeddings are ``input`` and marked as embeddings (rows are token / position
    vectors: Scion's column norm then acts per token, as the reference GPT configuration does), the head
    ``output``, other matrices ``hidden``."""
    infos = infer_roles(model, overrides={"wpe.weight": "input"})
    return [replace(info, embedding=True) if info.name in EMBEDDINGS else info for info in infos]


class LanguageModelProblem(Problem):
    """Next-token prediction on a token stream split into train and validation parts."""

    def __init__(self, model: GPT, train: torch.Tensor, val: torch.Tensor, batch_size: int, seed: int,
                 device: torch.device, eval_windows: int, info: dict[str, str]):
        self.block_size = model.config.block_size
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
        for split, tokens in (("training", train), ("validation", val)):
            if len(tokens) < self.block_size + 2:
                raise UsageError(f"the {split} text has {len(tokens)} tokens, fewer than block_size + 2 "
                                 f"= {self.block_size + 2}; use a longer text or a smaller block_size")
        self.model = model.to(device)
        self.train_tokens, self.val_tokens = train.to(device), val.to(device)
        self.batch_size, self.seed, self.eval_windows = batch_size, seed, eval_windows
        self.offsets = torch.arange(self.block_size + 1, device=device)
        self.params = gpt_roles(self.model)
        self.info = info

    def _windows(self, tokens: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = tokens[starts.to(tokens.device)[:, None] + self.offsets]  # (B, T + 1)
        return chunk[:, :-1], chunk[:, 1:]

    def _loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.model(inputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def loss(self, step: int) -> torch.Tensor:
        high = len(self.train_tokens) - self.block_size
        starts = torch.randint(high, (self.batch_size,), generator=step_generator(self.seed, step))
        return self._loss(*self._windows(self.train_tokens, starts))

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean cross-entropy over ``eval_windows`` evenly spaced validation windows."""
        last = len(self.val_tokens) - self.block_size - 1
        starts = torch.linspace(0, last, min(self.eval_windows, last + 1)).round().long()
        self.model.eval()
        total = 0.0
        for chunk in starts.split(max(self.batch_size, 32)):
            total += float(self._loss(*self._windows(self.val_tokens, chunk))) * len(chunk)
        self.model.train()
        return total / len(starts)


def stdlib_text() -> str:
    """The default corpus: Python's documentation topics, values joined in sorted-key order."""
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics))


def encode_text(path: str | None) -> tuple[torch.Tensor, int, dict[str, str]]:
    """(character ids, vocabulary size, info) for the corpus at ``path`` (``None``: the stdlib text)."""
    if path is None:
        return _encode(None, 0, 0)
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise UsageError(f"text file '{path}' not found")
    stat = file.stat()
    return _encode(str(file), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _encode(path: str | None, mtime_ns: int, size: int) -> tuple[torch.Tensor, int, dict[str, str]]:
    """Cached by path and modification stamp, so an edited file is read again."""
    if path is None:
        text, source = stdlib_text(), f"pydoc_data.topics (Python {platform.python_version()})"
    else:
        text, source = Path(path).read_text(encoding="utf-8"), path
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    vocabulary = np.unique(codes)  # sorted code points = the sorted set of characters
    ids = torch.from_numpy(np.searchsorted(vocabulary, codes).astype(np.int64))
    info = {
        "text": source,
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "text_chars": str(len(text)),
        "vocab_size": str(len(vocabulary)),
    }
    return ids, len(vocabulary), info


def build_gpt(seed: int, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
              init: str) -> GPT:
    """A seeded GPT, re-initialized by :func:`gsibench.tasks.init.initialize` unless ``init`` is the default."""
    config = GPTConfig(vocab_size, block_size, n_layer, n_head, n_embd)
    torch.manual_seed(seed)
    model = GPT(config)
    if init != "default":
        from gsibench.tasks.init import initialize

        initialize(model, init)
    return model


def gpt_options(**defaults: int) -> dict[str, Option]:
    """The model and batch options of the GPT tasks (``block_size``, ``batch_size``, ``n_layer``, ``n_head``,
    ``n_embd``) with their bounds, and ``init``."""
    highs = {"block_size": 4096, "batch_size": 4096, "n_layer": 64, "n_head": 64, "n_embd": 8192}
    options = {name: Option(default, low=1, high=highs[name]) for name, default in defaults.items()}
    return {**options, "init": Option("default", choices=INITS)}


def check_gpt_shape(task: str, options: dict) -> None:
    if options["n_embd"] % options["n_head"]:
        raise UsageError(f"task '{task}': n_embd ({options['n_embd']}) must be a multiple of n_head "
                         f"({options['n_head']})")


@register
class CharGPT(Task):
    name = "char-gpt"
    description = "2-layer character GPT on Python's stdlib documentation text (ships with CPython), val loss"
    default_steps = 300
    score = Score("val_loss", higher_is_better=False)
    loss_bound = 1e3
    schedule = "warmup-cosine"
    clip = 1.0
    options = {"text": Option(None, kind=str), **gpt_options(block_size=64, batch_size=16, n_layer=2, n_head=2,
                                                                n_embd=64)}

    def check_options(self, options: dict) -> None:
        check_gpt_shape(self.name, options)
        if options["text"] is not None and not Path(options["text"]).expanduser().is_file():
            raise UsageError(f"task '{self.name}': text file '{options['text']}' not found")

    def build(self, seed: int, device: torch.device, text: str | None = None, block_size: int = 64,
              batch_size: int = 16, n_layer: int = 2, n_head: int = 2, n_embd: int = 64,
              init: str = "default") -> Problem:
        ids, vocab_size, info = encode_text(None if text is None else str(text))
        split = int(0.9 * len(ids))
        model = build_gpt(seed, vocab_size, block_size, n_layer, n_head, n_embd, init)
        return LanguageModelProblem(model, ids[:split], ids[split:], batch_size, seed, device, EVAL_WINDOWS,
                                    dict(info))
