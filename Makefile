# make run:       execute S10.ipynb (the settings from S10_* variables) into its run folder under
#                 experiments/ and print its result; the same command continues it after Ctrl-C
# make full-run SEED=n: the assignment's run of seed n in RUN_DIR (outside the clone), continued after
#                 its last finished epoch; when it ends, published into runs/, images/ and S10.ipynb
# make weights WEIGHTS=runs/s10-seedN.pt: the notebook on those trained weights (no training, minutes)
# make test:      the unit tests and the notebook smoke run
# make gpu-check: on a CUDA GPU, in about 3 minutes: throughput and the predicted time of 24 epochs
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_DIR ?= $(HOME)/s10-runs
DATA_ARCHIVE ?= ../shared/data/cifar10-jpeg.tar.gz
CIFAR10_ROOT ?= $(RUN_DIR)/cifar10
SEED ?= 1
WEIGHTS ?= runs/s10-seed3.pt
# CIFAR10_ROOT once it holds the images (unpacked from DATA_ARCHIVE if that is there), else nothing:
# then torchvision downloads CIFAR-10, or says in one line what to set
DATA = root=$(CIFAR10_ROOT); [ -d "$$root/train" ] || root=; CIFAR10_ROOT=$$root

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

setup: $(BIN)/.installed

data:
	@[ -d "$(CIFAR10_ROOT)/train" ] || [ ! -f "$(DATA_ARCHIVE)" ] || \
	  { mkdir -p "$(CIFAR10_ROOT)" && tar -xzf "$(DATA_ARCHIVE)" -C "$(CIFAR10_ROOT)"; }

run: setup data
	@$(DATA) $(BIN)/python -m utils notebook

full-run: setup data
	@$(DATA) S10_SEED=$(SEED) S10_RUNS_DIR=$(RUN_DIR) S10_PROGRESS=0 $(BIN)/python -m utils notebook --publish

weights: setup data
	@$(DATA) S10_WEIGHTS=$(WEIGHTS) S10_PROGRESS=0 $(BIN)/python -m utils notebook

test: setup
	$(BIN)/python -m pytest

gpu-check: setup
	mkdir -p benchmarks/results
	S10_DEVICE=cuda $(BIN)/python -m benchmarks.train_throughput --rounds 2 --json benchmarks/results/gpu-check.json

.PHONY: setup data run full-run weights test gpu-check
