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

lint: $(STAMP)
	$(VENV)/bin/ruff check suite optimizers tasks tests

clean:
	rm -rf $(VENV) mlflow.db mlruns results
