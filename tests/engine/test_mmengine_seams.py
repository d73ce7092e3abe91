"""mmdet_dinov2 extends mmengine/mmdet/mmcv only through registries and public seams."""
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SNAPSHOT = textwrap.dedent('''
    import inspect, sys, types
    import mmengine, mmengine.runner, mmengine.hooks, mmengine.fileio, mmengine.model
    import mmengine.runner.checkpoint, mmengine.fileio.backends, mmengine.logging
    import mmcv, mmcv.ops, mmdet, mmdet.apis, mmdet.models, mmdet.datasets, mmdet.engine
    import torch, torch.serialization

    def snapshot():
        """id of every function and class, and of every attribute of those classes."""
        seen = {}
        for name, module in list(sys.modules.items()):
            if not name.split('.')[0] in ('mmengine', 'mmdet', 'mmcv') or module is None:
                continue
            for attr, value in list(vars(module).items()):
                if isinstance(value, (types.FunctionType, type)):
                    seen[f'{name}.{attr}'] = id(value)
                    if isinstance(value, type):
                        for key, member in vars(value).items():
                            if callable(member) or isinstance(member, (staticmethod, classmethod,
                                                                       property)):
                                seen[f'{name}.{attr}.{key}'] = id(member)
        return seen

    before = snapshot()
    safe_before = list(torch.serialization.get_safe_globals())
    import mmdet_dinov2  # noqa
    after = snapshot()
    changed = sorted(key for key in before if key in after and after[key] != before[key])
    print('CHANGED', changed)
    # torch adds its own classes when its submodules (dynamo, distributed) get imported
    print('SAFE_GLOBALS_ADDED', [g for g in torch.serialization.get_safe_globals()
                                 if g not in safe_before
                                 and not getattr(g, '__module__', '').startswith('torch.')])
''')


def test_import_leaves_mmengine_mmdet_and_mmcv_as_they_were():
    result = subprocess.run([sys.executable, '-c', SNAPSHOT], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(' ', 1) for line in result.stdout.splitlines()
                 if line.startswith(('CHANGED', 'SAFE_GLOBALS_ADDED')))
    assert lines['CHANGED'] == '[]', f'import mmdet_dinov2 replaced: {lines["CHANGED"]}'
    assert lines['SAFE_GLOBALS_ADDED'] == '[]'  # we add nothing to torch's process-wide list


def test_the_checkpoint_loader_of_every_mmengine_prefix_is_ours():
    """No mmengine loader (with its weights_only=False fallback) stays reachable."""
    from mmengine.runner.checkpoint import CheckpointLoader
    import mmdet_dinov2  # noqa: F401
    from mmdet_dinov2.checkpoints import mmengine_schemes
    ours = {loader for _, loader in mmengine_schemes.SCHEMES}
    for prefix, loader in CheckpointLoader._schemes.items():  # private: the point of this test
        assert loader in ours, f'{prefix!r} is still loaded by mmengine\'s {loader.__name__}'
    for path in ('x.pth', 'http://h/x.pth', 'https://h/x.pth', 's3://b/x.pth',
                 'open-mmlab://resnet50', 'torchvision://resnet50', 'mmcls://x', 'pavi://x'):
        assert CheckpointLoader._get_checkpoint_loader(path) in ours, path


# AtomicCheckpointHook overrides CheckpointHook._save_checkpoint_with_step, which orders deleting
# the oldest checkpoint, writing the new one and updating last_checkpoint; no public seam does.
# Were it renamed, saves would silently lose their crash safety: this test fails loudly instead.
PRIVATE_METHOD_PARAMETERS = ('runner', 'step', 'meta')
PRIVATE_ATTRIBUTES = ('keep_ckpt_ids', 'filename_tmpl', 'last_ckpt', 'file_backend', 'out_dir',
                      'max_keep_ckpts')


def test_the_private_names_we_override_still_exist():
    import inspect

    from mmengine.hooks import CheckpointHook
    method = getattr(CheckpointHook, '_save_checkpoint_with_step', None)
    assert method is not None, (
        'mmengine.hooks.CheckpointHook has no _save_checkpoint_with_step any more: '
        "AtomicCheckpointHook's override is no longer called; port it to the new method")
    params = tuple(inspect.signature(method).parameters)[1:]
    assert params == PRIVATE_METHOD_PARAMETERS, (
        f'CheckpointHook._save_checkpoint_with_step{params} changed: update '
        'AtomicCheckpointHook._save_checkpoint_with_step')
    source = inspect.getsource(CheckpointHook)
    missing = [name for name in PRIVATE_ATTRIBUTES if f'self.{name}' not in source]
    assert not missing, f'CheckpointHook no longer sets {missing}: update AtomicCheckpointHook'
