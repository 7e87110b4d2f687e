# make demo : set up .venv (when missing) and fine-tune on the embedded synthetic set
# make test : set up .venv (when missing) and run the whole test suite
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# torch/torchvision pinned to the builds this project is developed and tested with
TORCH   := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-fast lint weights clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/activate

weights: $(BIN)/activate
	$(BIN)/python tools/fetch_weights.py mobilenet_v2

demo: weights
	$(BIN)/python tools/train_det.py --cfg configs/demo.yaml
	$(BIN)/python tools/eval_det.py
	$(BIN)/python tools/infer.py --source datasets/synthetic/coco/val/val_00000.jpg

test: $(BIN)/activate
	$(BIN)/python -m pytest -q

test-fast: $(BIN)/activate
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(BIN)/activate
	$(BIN)/ruff check detection tools tests bench

clean:
	rm -rf runs datasets/synthetic datasets/synthetic.tmp
