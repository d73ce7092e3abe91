"""Helpers of the reliability tests: tiny COCO datasets written on the fly, the tiny config."""
import contextlib
import os
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TINY_CONFIG = REPO / 'tests' / 'tools' / 'tiny_config.py'


def load_tool(relative_path):
    """Import a script under tools/ (not a package) as a module, to call its ``main(argv)``; also
    loads test helper modules (importlib import mode cannot import them by name)."""
    import importlib.util
    name = 'reliability_tool_' + Path(relative_path).stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / relative_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


coco = load_tool('tests/coco_data.py')
CLASSES, write_split = coco.CLASSES, coco.write_split  # the tiny config's classes


def rect_ann(ann_id, category_id, box):
    """An annotation whose mask is the polygon of its box [x, y, w, h]."""
    x, y, w, h = box
    return dict(id=ann_id, category_id=category_id, bbox=list(box), area=float(w * h),
                iscrowd=0, segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]])


def simple_entries(num, size=64, seed=0, prefix='img'):
    """``num`` images of ``size`` pixels with one or two boxes each, ids unique across images."""
    rng = np.random.default_rng(seed)
    entries, ann_id = [], 1000 * (seed + 1)
    for i in range(num):
        anns = []
        for _ in range(1 + i % 2):
            w, h = rng.integers(size // 4, size // 2, 2)
            x, y = rng.integers(0, size - w), rng.integers(0, size - h)
            ann_id += 1
            anns.append(rect_ann(ann_id, 1 + ann_id % 2, [int(x), int(y), int(w), int(h)]))
        entries.append(dict(name=f'{prefix}{i}.png', size=(size, size), anns=anns))
    return entries


def dinov2_layout(embed_dim=64, depth=2, registers=0):
    """Random tensors in the official DINOv2 ViT layout (14-pixel patches, 37x37 positions), for
    the tiny backbone by default; ``registers=4`` adds the register tokens of the *_reg4 files."""
    sd = {'cls_token': torch.randn(1, 1, embed_dim), 'pos_embed': torch.randn(1, 1370, embed_dim),
          'mask_token': torch.zeros(1, embed_dim),
          'patch_embed.proj.weight': torch.randn(embed_dim, 3, 14, 14),
          'patch_embed.proj.bias': torch.randn(embed_dim),
          'norm.weight': torch.ones(embed_dim), 'norm.bias': torch.zeros(embed_dim)}
    for i in range(depth):
        p = f'blocks.{i}.'
        sd.update({p + 'norm1.weight': torch.ones(embed_dim),
                   p + 'norm1.bias': torch.zeros(embed_dim),
                   p + 'attn.qkv.weight': torch.randn(3 * embed_dim, embed_dim),
                   p + 'attn.qkv.bias': torch.randn(3 * embed_dim),
                   p + 'attn.proj.weight': torch.randn(embed_dim, embed_dim),
                   p + 'attn.proj.bias': torch.randn(embed_dim),
                   p + 'ls1.gamma': torch.randn(embed_dim), p + 'ls2.gamma': torch.randn(embed_dim),
                   p + 'norm2.weight': torch.ones(embed_dim),
                   p + 'norm2.bias': torch.zeros(embed_dim),
                   p + 'mlp.fc1.weight': torch.randn(4 * embed_dim, embed_dim),
                   p + 'mlp.fc1.bias': torch.randn(4 * embed_dim),
                   p + 'mlp.fc2.weight': torch.randn(embed_dim, 4 * embed_dim),
                   p + 'mlp.fc2.bias': torch.randn(embed_dim)})
    if registers:
        sd['register_tokens'] = torch.randn(1, registers, embed_dim)
    return sd


def tiny_config(data_root, work_dir, **options):
    """The tiny config on ``data_root`` (instances_{train,val}.json) with ``work_dir``;
    ``options`` are dotted cfg options (``'train_cfg.max_epochs': 1``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(TINY_CONFIG))
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


def run_python(args, cwd=REPO, env=None, timeout=240):
    """Run ``python ARGS`` from the repository root; return the CompletedProcess (text)."""
    import subprocess
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


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """Four training and two validation images of 64x64 pixels."""
    root = tmp_path_factory.mktemp('tiny_data')
    write_split(root, 'train', simple_entries(4, seed=0))
    write_split(root, 'val', simple_entries(2, seed=1, prefix='val'))
    return root


@pytest.fixture(autouse=True, scope='session')
def _private_torch_home(tmp_path_factory):
    """Downloads of URL tests go to a temporary torch hub cache, not the user's."""
    previous = os.environ.get('TORCH_HOME')
    os.environ['TORCH_HOME'] = str(tmp_path_factory.mktemp('torch_home'))
    yield
    if previous is None:
        os.environ.pop('TORCH_HOME')
    else:
        os.environ['TORCH_HOME'] = previous


@pytest.fixture(scope='session')
def h():
    """These helpers, for test modules (importlib import mode cannot import a conftest)."""
    return sys.modules[__name__]


@pytest.fixture(autouse=True)
def _no_trust_left_behind():
    """Trust is scoped to the run or block that asked for it: none is left after a test."""
    from mmdet_dinov2.checkpoints import checkpoints_trusted
    assert not checkpoints_trusted()
    yield
    assert not checkpoints_trusted(), 'checkpoint trust outlived the test that turned it on'


@pytest.fixture(autouse=True, scope='module')
def _plain_config_text():
    """Speed: mmengine formats config text with yapf (seconds per runner: log, dump, every
    checkpoint's meta); tests keep the unformatted text, which is the same Python."""
    from yapf.yapflib import yapf_api
    formatter = yapf_api.FormatCode
    yapf_api.FormatCode = lambda text, **kwargs: (text, False)
    yield
    yapf_api.FormatCode = formatter


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """Speed: the tiny models gain nothing from intra-op threads, and on a shared 2-core machine
    two threads per process oversubscribe it (an iteration took 2.5 s instead of 0.3 s)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
