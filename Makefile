# The README's two commands: `make demo` and `make test`. Either one alone sets up .venv first.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp

.PHONY: setup demo test clean-venv offline-check

# .venv is (re)built when missing or older than what defines it.
setup: $(STAMP)
$(STAMP): requirements.txt pyproject.toml tools/setup_env.sh tools/lib/setup_helpers.sh
	bash tools/setup_env.sh

# The main job: generate the shapes dataset, train, evaluate and draw a ViT-Adapter Mask R-CNN on CPU.
demo: $(STAMP)
	$(PY) tools/quickstart.py $(DEMO_ARGS)

# The whole test suite.
test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

# Not part of `test`: tools/gpu/'s offline install, end to end on this CPU (wheelhouse, a node-like venv,
# install with pip --no-index, check.sh --cpu). The first run compiles mmcv's CPU ops (minutes); the
# built wheel is cached. OFFLINE_CHECK_FRESH=1 compiles again.
offline-check: $(STAMP)
	nice -n 10 bash tools/gpu/offline_check.sh

clean-venv:
	rm -rf $(VENV)
