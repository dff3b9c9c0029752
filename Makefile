# Two commands on a fresh machine:  `make run` (default battery)  and  `make test` (pytest).
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.gsibench-installed
TORCH   := torch==2.14.1 torchvision==0.29.1
ARGS    ?=

.PHONY: run test lint leaderboard clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,vision,ray]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/gsibench run $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

# Regenerate the committed leaderboard/ (its two battery files, then the page; resumes from ./mlflow.db,
# so an interrupted board is built in parts). About 2.6 hours on 2 cores (5.1 cell-hours), char-gpt most of it.
leaderboard: $(STAMP)
	$(VENV)/bin/gsibench run leaderboard/battery.toml
	$(VENV)/bin/gsibench run leaderboard/battery-char-gpt.toml
	$(VENV)/bin/gsibench grid --task digits-mlp --betas 0.9,0.99,0.999 --seeds 3
	$(VENV)/bin/gsibench leaderboard --experiment leaderboard --out leaderboard
	$(VENV)/bin/gsibench baseline --optimizer adam --out leaderboard/baseline.json

lint: $(STAMP)
	$(VENV)/bin/ruff check suite optimizers tasks tests benchmarks

clean:
	rm -rf $(VENV) mlflow.db mlruns results
