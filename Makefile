# make run:  set up, then execute S10.ipynb top to bottom (full 24-epoch training), outputs saved in place
# make test: set up, then the unit tests and the notebook smoke run
# make gpu-check: on a CUDA GPU, in about 3 minutes: device, precision, loader, model-step and real-loop
#   images/s and the predicted time of 24 epochs, printed and written to benchmarks/results/gpu-check.json
# make full-run SEED=n: the full run of seed n (default 1) on the CIFAR-10 JPEG copy, its checkpoint in
#   RUN_DIR (outside the clone): checked first (one line if it cannot go on), then started, or continued
#   after its last finished epoch; it ends by printing its result. Its record and final weights go to
#   runs/s10-seed<n>.json/.pt, or, where that record belongs to another run (a committed one made by
#   other code), beside the checkpoint in RUN_DIR; the executed notebook and its figures stay in RUN_DIR
#   (S10-seed<n>.executed.ipynb, images-seed<n>/) until they are copied over S10.ipynb and images/
# make weights WEIGHTS=runs/s10-seedN.pt: the notebook on those trained weights (no training, minutes),
#   executed into RUN_DIR; prints its test accuracy and results table
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
CIFAR10_ROOT ?= $(RUN_DIR)/cifar10
SEED ?= 1
WEIGHTS ?= runs/s10-seed3.pt
RUN_ENV = CIFAR10_ROOT=$(CIFAR10_ROOT) S10_SEED=$(SEED) S10_CHECKPOINT=$(RUN_DIR)/s10-seed$(SEED).pt \
  S10_FIGURES=$(RUN_DIR)/images-seed$(SEED) S10_PROGRESS=0
EXECUTE = $(BIN)/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 S10.ipynb \
  --log-level=ERROR --output-dir $(RUN_DIR)

data:
	mkdir -p $(RUN_DIR)
	[ -d $(CIFAR10_ROOT)/train ] || { mkdir -p $(CIFAR10_ROOT) && tar -xzf $(DATA_ARCHIVE) -C $(CIFAR10_ROOT); }

full-run: setup data
	$(RUN_ENV) $(BIN)/python -m utils.runs check
	$(RUN_ENV) $(EXECUTE) --output S10-seed$(SEED).executed
	$(BIN)/python -m utils.runs result $(RUN_DIR)/S10-seed$(SEED).executed.ipynb

weights: setup data
	CIFAR10_ROOT=$(CIFAR10_ROOT) S10_WEIGHTS=$(WEIGHTS) S10_FIGURES=$(RUN_DIR)/images-weights S10_PROGRESS=0 \
	  $(EXECUTE) --output S10-weights
	$(BIN)/python -m utils.runs result $(RUN_DIR)/S10-weights.ipynb

test: setup
	$(BIN)/python -m pytest

gpu-check: setup
	mkdir -p benchmarks/results
	S10_DEVICE=cuda $(BIN)/python -m benchmarks.train_throughput --rounds 2 --json benchmarks/results/gpu-check.json

.PHONY: setup run data full-run weights test gpu-check
