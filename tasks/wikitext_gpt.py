"""NanoGPT on WikiText-2, the language-model setting of arXiv 2601.21739 (byte-level, local files).

The model is :class:`gsibench.tasks.char_gpt.GPT`; the text is WikiText-2 (Merity et al., 2016) read from
``wiki.train.raw`` and ``wiki.valid.raw`` (or the tokenized ``wiki.train.tokens`` /
``wiki.valid.tokens``) in ``<data_dir>/wikitext-2-raw``, ``<data_dir>/wikitext-2`` or ``<data_dir>``
itself, where ``data_dir`` is the task option or else the ``GSIBENCH_DATA`` environment variable.
Nothing is downloaded: without the files the battery skips the task with :meth:`WikiTextGPT.unavailable`'s
message.

Tokens are the UTF-8 *bytes* of the files (vocabulary 256, no tokenizer to fetch). The paper's
code uses the GPT-2 BPE tokenizer and GPT-2-small (12 layers, 12 heads, 768 wide, dropout 0.1) for 60
epochs; the defaults here are a 6-layer, 6-head, 384-wide model on 8 windows of 256 tokens per step
(the paper's batch), with clip 1.0 and warm-up + cosine as in the paper. ``n_layer=12,n_head=12,
n_embd=768`` gives the paper's width and depth. Step k draws its windows from ``step_generator(seed, k)``;
the score is the validation loss in nats per byte on fixed, evenly spaced windows of the validation file.
Parameter roles are char-gpt's (``gpt_roles``): the token and position tables are ``input`` and marked
as embeddings, so that Scion's column norm acts per token.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from gsibench.core.errors import UsageError
from gsibench.tasks.base import Problem, Score, Task
from gsibench.tasks.char_gpt import LanguageModelProblem, build_gpt, check_gpt_shape, gpt_options
from gsibench.tasks.options import Option
from gsibench.tasks.registry import register

EVAL_WINDOWS = 512
"""Validation windows scored by ``evaluate()`` (512 × 256 bytes ≈ 11% of the validation file)."""
FOLDERS = ("wikitext-2-raw", "wikitext-2", ".")
FILE_PAIRS = (("wiki.train.raw", "wiki.valid.raw"), ("wiki.train.tokens", "wiki.valid.tokens"))


def data_root(data_dir: str | None) -> Path | None:
    """The ``data_dir`` option, else ``$GSIBENCH_DATA``, else ``None``."""
    root = data_dir or os.environ.get("GSIBENCH_DATA")
    return Path(root).expanduser() if root else None


def find_wikitext(data_dir: str | None) -> tuple[Path, Path] | None:
    """(train file, validation file) if WikiText-2 is on disk, else ``None``."""
    root = data_root(data_dir)
    if root is None:
        return None
    for folder in FOLDERS:
        for train_name, valid_name in FILE_PAIRS:
            train, valid = root / folder / train_name, root / folder / valid_name
            if train.is_file() and valid.is_file():
                return train.resolve(), valid.resolve()
    return None


@lru_cache(maxsize=2)
def read_bytes(path: Path) -> tuple[torch.Tensor, str]:
    """(byte ids as int64, SHA-256 of the file)."""
    data = path.read_bytes()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long(), hashlib.sha256(data).hexdigest()


@register
class WikiTextGPT(Task):
    name = "wikitext-gpt"
    description = "6-layer byte-level NanoGPT on WikiText-2 from local files (paper setting), val loss"
    default_steps = 2000
    score = Score("val_loss", higher_is_better=False)
    loss_bound = 1e3
    schedule = "warmup-cosine"
    clip = 1.0
    needs_data = True
    prefers_gpu = True
    step_seconds = 20.0
    options = {"data_dir": Option(None, kind=str), **gpt_options(block_size=256, batch_size=8, n_layer=6, n_head=6,
                                                                    n_embd=384)}

    def check_options(self, options: dict[str, Any]) -> None:
        check_gpt_shape(self.name, options)

    def unavailable(self, options: dict[str, Any]) -> str | None:
        if find_wikitext(options.get("data_dir")) is not None:
            return super().unavailable(options)
        root = data_root(options.get("data_dir"))
        where = f"looked in {root} and its wikitext-2-raw/ and wikitext-2/ folders" if root else (
            "no data_dir option and GSIBENCH_DATA is not set")
        return (
            f"task '{self.name}' needs WikiText-2 on disk ({where}); gsibench never downloads data. "
            "Put wiki.train.raw and wiki.valid.raw (or the .tokens files) in <dir>/wikitext-2-raw/ and pass "
            "wikitext-gpt[data_dir=<dir>] or set GSIBENCH_DATA=<dir>. The files come in wikitext-2-raw-v1.zip "
            "(Merity et al. 2016); the Hugging Face dataset Salesforce/wikitext, config wikitext-2-raw-v1, has "
            "the same lines: write the 'text' column of its train and validation splits, concatenated, to them."
        )

    def build(self, seed: int, device: torch.device, data_dir: str | None = None, block_size: int = 256,
              batch_size: int = 8, n_layer: int = 6, n_head: int = 6, n_embd: int = 384,
              init: str = "default") -> Problem:
        files = find_wikitext(data_dir)
        if files is None:
            raise UsageError(self.unavailable({"data_dir": data_dir}))
        (train, train_sha), (valid, valid_sha) = read_bytes(files[0]), read_bytes(files[1])
        info = {"text": str(files[0].parent), "train_file": files[0].name, "train_sha256": train_sha,
                "valid_sha256": valid_sha, "train_bytes": str(len(train)), "valid_bytes": str(len(valid))}
        model = build_gpt(seed, 256, block_size, n_layer, n_head, n_embd, init)
        return LanguageModelProblem(model, train, valid, batch_size, seed, device, EVAL_WINDOWS, info)
