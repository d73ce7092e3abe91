# The README's two commands: `make demo` and `make test`. Either one alone sets up .venv first.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp

.PHONY: setup demo test clean-venv

# .venv is (re)built when missing or older than what defines it.
setup: $(STAMP)
$(STAMP): requirements.txt pyproject.toml tools/setup_env.sh tools/lib/build_eta.sh
	bash tools/setup_env.sh

# The main job: generate the shapes dataset, train, evaluate and draw a ViT-Adapter Mask R-CNN on CPU.
demo: $(STAMP)
	$(PY) tools/quickstart.py $(DEMO_ARGS)

# The whole test suite.
test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
