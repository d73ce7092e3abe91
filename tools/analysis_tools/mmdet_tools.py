"""Run one of mmdet's own tools (installed with onedl-mmdetection under ``mmdet/.mim/tools``) on
this project's configs, with mmdet's arguments: the wrappers beside this file and
tools/misc/print_config.py call :func:`run_mmdet_tool`.

mmdet's tools read a config with ``Config.fromfile`` and ``--cfg-options`` as written, so
``data_root=DIR`` would change the variable but none of the paths built from it: it is refused
with the keys to set instead (tools/train.py and tools/test.py move those paths themselves).
"""
import runpy
import sys
from pathlib import Path

import mmdet

import mmdet_dinov2  # noqa: F401  (the models, datasets and safe checkpoint readers, registered)
from mmdet_dinov2.engine.launch import DATA_ROOT_KEYS

MMDET_TOOLS = Path(mmdet.__file__).parent / '.mim' / 'tools'


def data_root_option(argv):
    """The ``data_root=...`` item of ``--cfg-options`` in ``argv``, or None."""
    in_options = False
    for arg in argv:
        if arg.startswith('--'):
            in_options = arg in ('--cfg-options', '--cfg_options')
        elif in_options and arg.split('=', 1)[0] == 'data_root':
            return arg
    return None


def run_mmdet_tool(relative_path, argv=None, defaults=()):
    """Run ``mmdet/.mim/tools/<relative_path>`` as a script with ``argv`` (default: this
    process's arguments), ``defaults`` appended for options ``argv`` does not give."""
    argv = list(sys.argv[1:] if argv is None else argv)
    script = MMDET_TOOLS / relative_path
    if not script.is_file():
        sys.exit(f'error: {script} does not exist: this mmdet was installed without its tools; '
                 'reinstall onedl-mmdetection from its wheel (tools/setup_env.sh does)')
    option = data_root_option(argv)
    if option is not None:
        sys.exit(f'error: --cfg-options {option}: mmdet\'s {relative_path} does not move the '
                 f'paths built from data_root; set them instead: --cfg-options {DATA_ROOT_KEYS} '
                 '(or edit data_root in your config file)')
    for flag, value in defaults:
        if flag not in argv:
            argv += [flag, value]
    sys.argv = [str(script)] + argv  # the script parses sys.argv, as when run directly
    runpy.run_path(str(script), run_name='__main__')
