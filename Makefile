# make run:  set up, then execute S10.ipynb top to bottom (full 24-epoch training), outputs saved in place
# make test: set up, then the unit tests and the notebook smoke run
# make gpu-check: on a CUDA GPU, in about 3 minutes: device, precision, loader, model-step and real-loop
#   images/s and the predicted time of 24 epochs, printed and written to benchmarks/results/gpu-check.json
# make full-run SEED=n: the full run of seed n (default 1) on the CIFAR-10 JPEG copy, its checkpoint in
#   RUN_DIR (outside the clone): started, or continued after its last finished epoch. Its run record and
#   final weights go to runs/s10-seed<n>.json/.pt; the executed notebook and its figures stay in RUN_DIR
#   (S10-seed<n>.executed.ipynb, images-seed<n>/) until they are copied over S10.ipynb and images/
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

RUN_DIR ?= $(HOME)/s10-runs
DATA_ARCHIVE ?= ../shared/data/cifar10-jpeg.tar.gz
SEED ?= 1

full-run: setup
	mkdir -p $(RUN_DIR)
	[ -d $(RUN_DIR)/cifar10/train ] || { mkdir -p $(RUN_DIR)/cifar10 && tar -xzf $(DATA_ARCHIVE) -C $(RUN_DIR)/cifar10; }
	CIFAR10_ROOT=$(RUN_DIR)/cifar10 S10_SEED=$(SEED) S10_CHECKPOINT=$(RUN_DIR)/s10-seed$(SEED).pt \
	  S10_RECORD=runs/s10-seed$(SEED).json S10_FIGURES=$(RUN_DIR)/images-seed$(SEED) S10_PROGRESS=0 \
	  $(BIN)/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 S10.ipynb \
	  --output-dir $(RUN_DIR) --output S10-seed$(SEED).executed

test: setup
	$(BIN)/python -m pytest

gpu-check: setup
	mkdir -p benchmarks/results
	S10_DEVICE=cuda $(BIN)/python -m benchmarks.train_throughput --rounds 2 --json benchmarks/results/gpu-check.json

.PHONY: setup run full-run test gpu-check
