"""What tests in several folders share: the repository root, the scripts under tools/ and demo/
loaded as modules, the tiny config on a dataset and its runner, a Python subprocess, a local HTTP
server."""
import contextlib
import importlib.util
import os
import subprocess
import sys
import uuid
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


def tiny_config(data_root, work_dir, **options):
    """The tiny config on ``data_root`` (instances_{train,val}.json) with ``work_dir``;
    ``options`` are dotted cfg options (``'train_cfg.max_epochs': 1``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(TINY_CONFIG)
    data_root = str(data_root).rstrip('/') + '/'
    merged = {
        'work_dir': str(work_dir),
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        'val_evaluator.ann_file': data_root + 'annotations/instances_val.json',
        'test_evaluator.ann_file': data_root + 'annotations/instances_val.json',
    }
    merged.update(options)
    cfg.merge_from_dict(merged)
    # several runners in one process: mmengine's visualizer is a named singleton
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    return cfg


def build_runner(cfg):
    """The config's runner, as mmdet's tools build it (``runner_type``, else mmengine's)."""
    from mmdet.registry import RUNNERS
    from mmengine.runner import Runner
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def train(cfg):
    """Train ``cfg``; return (runner, the text of its log file)."""
    runner = build_runner(cfg)
    runner.train()
    # mmengine reuses a logger (and its file) for runners of the same config built within the same
    # second, so read the file the logger actually writes rather than one named after this runner.
    files = [hd.baseFilename for hd in runner.logger.handlers if hasattr(hd, 'baseFilename')]
    return runner, ''.join(open(f).read() for f in files)


def run_python(args, cwd=REPO, env=None, timeout=240):
    """Run ``python ARGS`` from the repository root; return the CompletedProcess (text)."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1', **(env or {}))
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout)


@contextlib.contextmanager
def serve_folder(folder):
    """An HTTP server on 127.0.0.1 serving ``folder``; yields its base URL (no trailing slash)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(('127.0.0.1', 0),
                                 functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
