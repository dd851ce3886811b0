# Two entry points for a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev

# (byte-compiled first: where PYTHONDONTWRITEBYTECODE is set, every command would compile it again)
demo: venv
	$(BIN)/python -m compileall -q handoff
	$(BIN)/handoff demo

test: dev
	$(BIN)/ruff check handoff tests bench
	$(BIN)/python -m mypy handoff
	$(BIN)/python -m compileall -q handoff
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: venv
	$(BIN)/python bench/run.py --events 1000

clean:
	rm -rf $(VENV) build *.egg-info
