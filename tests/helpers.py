"""What tests in several folders share: the repository root and the scripts under tools/ and demo/
loaded as modules."""
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = str(REPO / 'tests' / 'tools' / 'tiny_config.py')  # a detector small enough for CPU runs


def load_tool(relative_path):
    """The script at ``relative_path`` (under tools/ or demo/, which are no packages) as a module, to
    call its functions or its ``main(argv)``; loaded once per session. Loaded by path rather than by
    name: ``tools/test.py`` would shadow the standard library's ``test`` package."""
    name = 'tool_' + '_'.join(Path(relative_path).with_suffix('').parts)
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / relative_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
