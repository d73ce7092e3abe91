"""docs/custom_dataset.md: every repository path its commands and links name exists."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / 'docs' / 'custom_dataset.md'
PATH = re.compile(r'(?<![\w/.])((?:tools|demo|configs|docs|pretrained)/[\w./-]+\.(?:py|sh|md))')


def test_named_paths_exist():
    text = DOC.read_text()
    named = set(PATH.findall(text)) | {
        str((DOC.parent / link).resolve().relative_to(ROOT))
        for link in re.findall(r'\]\((\.\./[^)#]+)\)', text)}
    assert named, 'no paths found: the pattern is wrong'
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f'docs/custom_dataset.md names files that do not exist: {missing}'
