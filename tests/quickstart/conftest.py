"""Fixtures for the quickstart tests: the tools scripts, loaded as modules from their files."""
import pytest

from tests.helpers import load_tool


@pytest.fixture(scope='session')
def shapes_tool():
    return load_tool('tools/misc/make_shapes_dataset.py')


@pytest.fixture(scope='session')
def curves_tool():
    return load_tool('tools/analysis_tools/plot_curves.py')
