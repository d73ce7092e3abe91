"""Every command in the README and docs runs as written, as far as can be checked without running
it: each file path it names exists, and each --option it gives to one of our tools is one that
tool (or the mmdet tool it wraps) defines."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = ['README.md', *sorted(str(p.relative_to(REPO)) for p in (REPO / 'docs').glob('*.md')),
        'configs/vit_adapter/README.md', 'pretrained/README.md']
# a repository path: a known top folder, then path characters (braces expand below)
PATH = re.compile(r'(?<![\w./-])((?:tools|configs|demo|docs|tests|mmdet_dinov2)/[\w./{},*$-]+)')
PLACEHOLDER = re.compile(r'\.\.\.|<|\*|\bX\b|NAME|TIMESTAMP|\$')


def expand(path):
    """``a-{s,b}.py`` -> a-s.py, a-b.py; ``ld{0.60..0.95}`` -> every file matching the prefix."""
    match = re.search(r'\{([^{}]*)\}', path)
    if not match:
        return [path]
    if '..' in match[1]:  # a range: checked as a prefix pattern
        return [path[:match.start()] + '*' + path[match.end():]]
    return [p for part in match[1].split(',') for p in expand(path[:match.start()] + part +
                                                                  path[match.end():])]


def named_paths(text):
    for raw in PATH.findall(text):
        raw = raw.rstrip('.,:;)')
        if PLACEHOLDER.search(raw.replace('*', '')) or raw.endswith('/'):
            continue
        yield raw


@pytest.mark.parametrize('doc', DOCS)
def test_every_path_a_document_names_exists(doc):
    text = (REPO / doc).read_text()
    missing = []
    for raw in named_paths(text):
        for path in expand(raw):
            found = list(REPO.glob(path)) if '*' in path else [REPO / path]
            if not any(p.exists() for p in found):
                missing.append(path)
    assert not missing, f'{doc} names paths that do not exist: {sorted(set(missing))}'


# `python tools/x.py ... --flag`, `tools/x.sh`, `.venv/bin/python demo/x.py --flag`
COMMAND = re.compile(r'(?:python|\.venv/bin/python)\s+((?:tools|demo)/[\w/]+\.py)([^`\n|]*)')


def tool_options(script):
    """The --options a tool defines: its own argparse, plus the mmdet tool it runs, if any."""
    source = (REPO / script).read_text()
    options = set(re.findall(r"['\"](--[\w-]+)['\"]", source))
    if 'add_run_arguments(' in source:  # the options tools/train.py and tools/test.py share
        shared = (REPO / 'mmdet_dinov2' / 'engine' / 'launch.py').read_text()
        options |= set(re.findall(r"['\"](--[\w-]+)['\"]", shared))
    wrapped = re.search(r"run_mmdet_tool\(\s*['\"]([\w/]+\.py)", source)
    if wrapped:
        import mmdet
        mmdet_tool = Path(mmdet.__file__).parent / '.mim' / 'tools' / wrapped[1]
        options |= set(re.findall(r"['\"](--[\w-]+)['\"]", mmdet_tool.read_text()))
    return options


@pytest.mark.parametrize('doc', DOCS)
def test_every_option_a_document_gives_a_tool_exists(doc):
    wrong = []
    for script, rest in COMMAND.findall((REPO / doc).read_text()):
        if not (REPO / script).is_file():
            continue  # reported by the path test
        known = tool_options(script)
        for option in re.findall(r'(?<![\w-])(--[a-z][\w-]*)', rest):
            if option not in known:
                wrong.append(f'{script} {option}')
    assert not wrong, f'{doc} gives options the tools do not have: {sorted(set(wrong))}'


def test_the_config_catalogue_lists_every_config():
    """Each config file under configs/ (not the _base_ parts) is named in the catalogue,
    configs/vit_adapter/README.md, by its path from there (as its tables do) or from the root."""
    catalogue = REPO / 'configs' / 'vit_adapter'
    text = (catalogue / 'README.md').read_text()
    named = set(re.findall(r'`([\w./-]+\.py)`', text))
    listed = {(catalogue / name).resolve() for name in named} | {(REPO / name).resolve() for name in named}
    configs = {p.resolve() for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts}
    missing = sorted(str(p.relative_to(REPO)) for p in configs - listed)
    assert not missing, f'configs/vit_adapter/README.md does not list: {missing}'
