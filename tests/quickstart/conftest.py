"""Fixtures for the quickstart tests: the tools scripts, loaded as modules from their files."""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_tool(relative_path):
    """Import a script under tools/ (not a package) as a module."""
    path = REPO / relative_path
    name = 'quickstart_test_' + path.stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope='session')
def shapes_tool():
    return load_tool('tools/misc/make_shapes_dataset.py')


@pytest.fixture(scope='session')
def curves_tool():
    return load_tool('tools/analysis_tools/plot_curves.py')
