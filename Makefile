# The README's two commands: `make demo` and `make test`. Either one alone sets up .venv first.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp

.PHONY: setup demo test lint clean-venv lock offline-check

# .venv is (re)built when missing or older than what defines it.
setup: $(STAMP)
$(STAMP): requirements.txt requirements.lock pyproject.toml tools/setup_env.sh tools/lib/setup_helpers.sh \
		tools/lib/trim_mmcv.py tools/lib/mmcv_ops.txt
	bash tools/setup_env.sh

# The main job: generate the shapes dataset, train, evaluate and draw a ViT-Adapter Mask R-CNN on CPU.
demo: $(STAMP)
	$(PY) tools/quickstart.py $(DEMO_ARGS)

# The whole test suite.
test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

# ruff's lint (pyproject.toml [tool.ruff]); CI runs it after the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Not part of `test`: tools/gpu/'s offline install, end to end on this CPU (wheelhouse, a node-like venv,
# install with pip --no-index, check.sh --cpu). The first run compiles mmcv's CPU ops (minutes); the
# built wheel is cached. OFFLINE_CHECK_FRESH=1 compiles again.
offline-check: $(STAMP)
	nice -n 10 bash tools/gpu/offline_check.sh

clean-venv:
	rm -rf $(VENV)

# requirements.lock: every package setup installs besides torch, torchvision and onedl-mmcv, resolved
# from requirements.txt's pins (run after changing them; needs the package index and .venv/bin/uv).
# uv keeps the versions already in requirements.lock where the pins allow: the tested set.
lock:
	$(VENV)/bin/uv pip compile requirements.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--override tools/lib/torch_excluded.txt --no-emit-package torch --no-emit-package torchvision \
		--no-emit-package onedl-mmcv --no-emit-package uv \
		--no-header -o requirements.lock
