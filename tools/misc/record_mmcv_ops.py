"""Record which of onedl-mmcv's compiled ops (functions of ``mmcv._ext``) a command calls.

tools/lib/mmcv_ops.txt, the list of ops the trimmed onedl-mmcv build compiles (tools/lib/trim_mmcv.py),
is made with this tool from real runs, not from reading code:

    python tools/misc/record_mmcv_ops.py record --log ops.log -- python -m pytest tests -x -q
    python tools/misc/record_mmcv_ops.py record --log ops.log -- python tools/quickstart.py --epochs 1 ...
    python tools/misc/record_mmcv_ops.py record --log ops.log -- python tools/misc/record_mmcv_ops.py configs
    python tools/misc/record_mmcv_ops.py write ops.log > tools/lib/mmcv_ops.txt

Run them in a clean clone of the project (tests write there) with .venv's python.

``record`` runs COMMAND with a ``sitecustomize`` on PYTHONPATH (so every Python process it starts is
recorded too, subprocesses included) that wraps each function of ``mmcv._ext`` when mmcv loads it;
the first call of each (op, device) in a process appends "op<TAB>device<TAB>where" to the log.
``configs`` runs one training step and one inference of every config under configs/ on the CPU, the
backbone shrunk to tiny widths (the ops are the heads' and the necks': the adapters call mmcv only
for CUDA deformable attention). ``write`` turns logs into the list, adding the ops only a CUDA run
reaches (CUDA_ONLY below: read from mmcv's Python ops and this project's models).
"""
import argparse
import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ENV = 'MMDET_DINOV2_RECORD_MMCV_OPS'  # the log file; the shim does nothing without it
ROOT = Path(__file__).resolve().parents[2]

# Ops that only a CUDA run calls: on the CPU the same code takes a path without mmcv's extension.
CUDA_ONLY = {
    'ms_deform_attn_forward': 'mmdet_dinov2/models/layers/ms_deform_attn.py deform_attn(), and mmcv\'s '
                              'MultiScaleDeformableAttention (DINO\'s encoder and decoder), take '
                              'MultiScaleDeformableAttnFunction for CUDA tensors; on the CPU their '
                              'PyTorch forms',
    'ms_deform_attn_backward': 'the same function\'s backward',
    'sigmoid_focal_loss_forward': 'mmdet\'s FocalLoss (DINO\'s classification loss) calls mmcv\'s '
                                  'sigmoid_focal_loss for CUDA tensors only (py_sigmoid_focal_loss '
                                  'on the CPU)',
    'sigmoid_focal_loss_backward': 'the same function\'s backward',
}

SITECUSTOMIZE = '''
import os, sys
sys.path.insert(0, {tools!r})
try:
    import record_mmcv_ops
    record_mmcv_ops.install(os.environ[{env!r}])
finally:
    del sys.path[0]
'''


def _device(args):
    for a in args:
        device = getattr(a, 'device', None)
        if device is not None:
            return device.type
    return '-'


def _wrap(module, log):
    seen = set()

    def make(name, fn):
        @functools.wraps(fn)
        def recorded(*args, **kwargs):
            key = (name, _device(list(args) + list(kwargs.values())))
            if key not in seen:
                seen.add(key)
                where = os.environ.get('PYTEST_CURRENT_TEST', ' '.join(sys.argv[:1])).split(' ')[0]
                with open(log, 'a') as f:  # one short write per line: safe across processes
                    f.write(f'{name}\t{key[1]}\t{where}\n')
            return fn(*args, **kwargs)
        return recorded

    for name in dir(module):
        fn = getattr(module, name)
        if not name.startswith('_') and callable(fn) and type(fn).__name__ == 'builtin_function_or_method':
            setattr(module, name, make(name, fn))


def install(log):
    """Wrap mmcv._ext's functions when it is imported (a meta path finder; nothing imported now)."""
    import importlib.abc

    class Loader(importlib.abc.Loader):
        def __init__(self, inner):
            self.inner = inner

        def create_module(self, spec):
            return self.inner.create_module(spec)

        def exec_module(self, module):
            self.inner.exec_module(module)
            _wrap(module, log)

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != 'mmcv._ext':
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, 'find_spec'):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    spec.loader = Loader(spec.loader)
                    return spec
            return None

    sys.meta_path.insert(0, Finder())


def record(log, command):
    log = Path(log).resolve()
    with tempfile.TemporaryDirectory() as shim:
        Path(shim, 'sitecustomize.py').write_text(SITECUSTOMIZE.format(tools=str(Path(__file__).parent),
                                                                       env=ENV))
        env = dict(os.environ, **{ENV: str(log)})
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [shim, env.get('PYTHONPATH')]))
        return subprocess.call(command, env=env)


def read_logs(paths):
    """{op: {device: first place seen}} from record's logs."""
    ops = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            name, device, where = (line.split('\t') + ['', ''])[:3]
            ops.setdefault(name, {}).setdefault(device, where)
    return ops


def write(paths, out):
    ops = read_logs(paths)
    lines = [
        '# The functions of onedl-mmcv\'s compiled extension (mmcv._ext) that this project calls: the',
        '# trimmed build (tools/lib/trim_mmcv.py) compiles these and the units they need, and gives every',
        '# other function a stub that raises an error naming it. One name a line; after it, where it was',
        '# seen.',
        '# Made by tools/misc/record_mmcv_ops.py from recorded runs (the whole test suite, the quickstart,',
        '# one training step and inference of every config) plus the ops only a CUDA run calls, read from',
        '# the code (marked cuda-only). To remake it, run the four commands of that tool\'s docstring.',
    ]
    for name in sorted(set(ops) | set(CUDA_ONLY)):
        if name in ops:
            seen = ', '.join(f'{device}: {where}' for device, where in sorted(ops[name].items()))
            lines.append(f'{name}  # recorded ({seen})')
        else:
            lines.append(f'{name}  # cuda-only: {CUDA_ONLY[name]}')
    out.write('\n'.join(lines) + '\n')


TINY_BACKBONE = dict(embed_dim=64, depth=2, num_heads=2, drop_path_rate=0.0, conv_inplane=16,
                     deform_num_heads=2, interaction_indexes=[[0, 0], [1, 1]], pretrained=None)


def _values(cfg, key):
    """Every value of KEY anywhere in a nested config."""
    if isinstance(cfg, dict):
        return [v for k, v in cfg.items() if k == key] + [x for v in cfg.values() for x in _values(v, key)]
    if isinstance(cfg, (list, tuple)):
        return [x for v in cfg for x in _values(v, key)]
    return []


def forward_configs(names=None):
    """One training step and one inference of each config (CPU, tiny backbone, SyncBN -> BN)."""
    import numpy as np
    import torch
    from mmengine.config import Config, ConfigDict

    import mmdet_dinov2  # noqa: F401
    from mmdet_dinov2.models.backbones.archs import expand_arch
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)

    sys.path.insert(0, str(ROOT / 'tools' / 'analysis_tools'))
    from benchmark import plain_bn  # SyncBN -> BN: one CPU process
    del sys.path[0]

    paths = sorted(p for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts
                   and 'layer_decay' not in p.parts)
    failed = []
    for path in paths:
        if names and path.stem not in names:
            continue
        cfg = Config.fromfile(str(path))
        model = cfg.model.to_dict()
        model['backbone'] = expand_arch(model['backbone'])  # the preset's keys, to be shrunk below
        model = ConfigDict(plain_bn(model))
        backbone = model.backbone
        if 'Adapter' in backbone.type:
            flat = all(isinstance(i, int) for i in backbone.get('interaction_indexes', []))
            backbone.update(TINY_BACKBONE)
            if flat:  # one block index per extractor (the frozen adapters)
                backbone.update(depth=4, interaction_indexes=[0, 1, 2, 3])
            for key in ('window_attn', 'window_size'):
                if key in backbone:
                    backbone[key] = {'window_attn': [True, False], 'window_size': [4, None]}[key]
            for key in ('pretrain_size', 'img_size'):
                if key in backbone:
                    backbone[key] = 64
            if 'layers_to_use' in backbone:
                backbone.layers_to_use = None
            n = len(model.neck.in_channels)
            model.neck.in_channels = [64] * n
        elif backbone.get('init_cfg'):
            backbone.init_cfg = None
        if 'num_queries' in model:  # DINO: no more queries than the tiny maps have tokens
            model.num_queries = 20
            model.dn_cfg.group_cfg.num_dn_queries = 10
        num_classes = max(_values(model, 'num_classes') or [80])
        try:
            torch.manual_seed(0)
            np.random.seed(0)
            detector = MODELS.build(model)
            detector.init_weights()
            detector.train()
            with_mask = 'mask' in path.stem
            data = detector.data_preprocessor(demo_mm_inputs(
                batch_size=2, image_shapes=[(3, 64, 96), (3, 96, 64)], num_items=[3, 2],
                num_classes=num_classes, with_mask=with_mask), True)
            losses = detector(**data, mode='loss')
            sum(v.sum() for k, v in losses.items() if 'loss' in k and torch.is_tensor(v)).backward()
            detector.eval()
            with torch.no_grad():
                detector.test_step(demo_mm_inputs(batch_size=1, image_shapes=[(3, 64, 96)],
                                                  num_classes=num_classes, with_mask=with_mask))
            print(f'ok      {path.relative_to(ROOT)}', flush=True)
        except Exception as e:  # noqa: BLE001  (report every config, then fail)
            failed.append(path)
            print(f'FAILED  {path.relative_to(ROOT)}: {type(e).__name__}: {e}', flush=True)
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    rec = sub.add_parser('record', help='run COMMAND (after --) and append the ops it calls to --log')
    rec.add_argument('--log', required=True)
    rec.add_argument('cmd', nargs=argparse.REMAINDER)
    wr = sub.add_parser('write', help='the ops list from record logs, to stdout')
    wr.add_argument('logs', nargs='+')
    cf = sub.add_parser('configs', help='one training step and inference of every config (CPU, tiny)')
    cf.add_argument('names', nargs='*', help='config file stems (default: all)')
    args = parser.parse_args(argv)
    if args.command == 'record':
        cmd = args.cmd[1:] if args.cmd[:1] == ['--'] else args.cmd
        if not cmd:
            parser.error('record needs a command after --')
        return record(args.log, cmd)
    if args.command == 'write':
        write(args.logs, sys.stdout)
        return 0
    return forward_configs(args.names)


if __name__ == '__main__':
    sys.exit(main())
