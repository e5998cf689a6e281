# make run:  set up, then execute S10.ipynb top to bottom (full 24-epoch training), outputs saved in place
# make test: set up, then the unit tests and the notebook smoke run
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

setup: $(BIN)/.installed

run: setup
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=-1 S10.ipynb

test: setup
	$(BIN)/python -m pytest

.PHONY: setup run test
