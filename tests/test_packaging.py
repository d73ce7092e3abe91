"""pyproject's bounds, requirements.txt's pins and requirements.lock agree with each other and with
what is installed: a wrong environment fails at install, with the resolver's message, not at
import."""
import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
EXCLUDED_FROM_LOCK = {'torch', 'torchvision', 'onedl-mmcv', 'uv'}


def pins(path):
    """{name: version} of the ``name==version`` lines of a requirements file."""
    found = {}
    for line in (REPO / path).read_text().splitlines():
        match = re.match(r'^([A-Za-z0-9_.-]+)==([^\s;]+)', line)
        if match:
            found[match[1].lower()] = match[2]
    return found


def dependencies():
    project = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']
    return [Requirement(text) for text in project['dependencies']]


def test_every_dependency_bound_admits_the_pinned_and_the_installed_version():
    pinned = pins('requirements.txt') | pins('requirements.lock')
    for requirement in dependencies():
        name = requirement.name.lower()
        assert name in pinned, f'{name} is a dependency but pinned nowhere'
        assert requirement.specifier.contains(pinned[name], prereleases=True), (requirement, pinned[name])
        installed = importlib.metadata.version(name).split('+')[0]
        assert requirement.specifier.contains(installed, prereleases=True), (requirement, installed)


def test_the_lock_holds_every_pin_and_no_torch():
    pinned, locked = pins('requirements.txt'), pins('requirements.lock')
    for name, version in pinned.items():
        if name not in EXCLUDED_FROM_LOCK:
            assert locked.get(name) == version, f'{name}: requirements.txt {version}, lock {locked.get(name)}'
    leaked = [name for name in locked if name in EXCLUDED_FROM_LOCK or name.startswith(('nvidia-', 'triton'))]
    assert not leaked, f'requirements.lock must leave torch and its CUDA libraries to setup: {leaked}'


def test_the_installed_environment_is_the_locked_one():
    for name, version in pins('requirements.lock').items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # platform-specific entries (colorama on Windows, ...)
        assert installed == version, f'{name}: installed {installed}, locked {version}'
