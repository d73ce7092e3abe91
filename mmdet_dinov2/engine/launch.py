"""From a config file to a runner: what tools/train.py and tools/test.py share. Without CUDA the
config is adapted (and each change logged) so that the same command runs on the CPU, in one process
or several: gloo, BN for SyncBN, BN statistics averaged over the processes, DDP without device ids.
"""
import gc
import os
import os.path as osp
from datetime import timedelta

import torch
import torch.distributed as torch_dist
from mmdet.registry import RUNNERS
from mmengine.config import Config, DictAction
from mmengine.dist import is_distributed
from mmengine.logging import print_log
from mmengine.runner import FlexibleRunner, Runner

from ..models.backbones.archs import arch_settings, has_presets
from .runner import SafeFlexibleRunner  # noqa: F401 (registers the runner_type)


def add_run_arguments(parser, cfg_options_help='override config settings, KEY=VALUE'):
    """The arguments tools/train.py and tools/test.py share (--local_rank for torch's launch)."""
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load checkpoints whose pickle needs more than tensors and plain '
                             'data (it may run code): only for files you trust')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help=cfg_options_help)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_run_arguments(parser, argv=None):
    """``parser.parse_args(argv)``, with LOCAL_RANK set from --local_rank unless already set."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(config, work_dir=None, cfg_options=None, launcher='none', trust=False):
    """Read a config the way mmdet's tools do.

    Args:
        work_dir (str, optional): overrides the config's; default ``work_dirs/<config name>``.
        cfg_options (dict, optional): ``--cfg-options``, merged last; ``data_root=DIR`` moves the
            loaders' and evaluators' paths (:func:`move_data_root`).
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'.
        trust (bool): ``--trust-checkpoint``: sets ``trust_checkpoint`` (wins over the config).
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg_options = dict(cfg_options)
        if 'data_root' in cfg_options:  # first, so that options naming a loader's path win
            for change in move_data_root(cfg, cfg_options.pop('data_root')):
                print_log(f'--cfg-options data_root: {change}', logger='current')
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    if trust:
        cfg.trust_checkpoint = True
    return cfg


DATA_ROOT_USERS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
                   'test_evaluator')
# what to set instead of data_root where it cannot be moved (also said by the mmdet tool wrappers)
DATA_ROOT_KEYS = ('train_dataloader.dataset.data_root=DIR/ val_dataloader.dataset.data_root=DIR/ '
                  'test_dataloader.dataset.data_root=DIR/ val_evaluator.ann_file=DIR/ANN.json '
                  'test_evaluator.ann_file=DIR/ANN.json')


def move_data_root(cfg, new_root):
    """Apply ``--cfg-options data_root=NEW``: the variable's value was copied into the loaders' and
    evaluators' paths when the config was read, so every string there that is the old root or lies
    under it moves to ``new_root`` (and ``data_root`` too). Return the changes, ``key: old -> new``;
    a ValueError names the keys to set instead if there is no ``data_root`` or nothing uses it.
    """
    old_root = cfg.get('data_root')
    explicit = f'set the paths themselves: --cfg-options {DATA_ROOT_KEYS}'
    if not isinstance(old_root, str) or not old_root:
        raise ValueError(f'--cfg-options data_root={new_root}: this config has no data_root '
                         f'variable to change; {explicit}')
    old_dir = old_root.rstrip('/') + '/'
    new_dir = str(new_root).rstrip('/') + '/'
    changes, seen = [], set()  # a config may share one dict (test_dataloader = val_dataloader)

    def move(node, key):
        if isinstance(node, str):
            if node.rstrip('/') == old_dir[:-1]:  # the root itself
                moved = new_dir if node.endswith('/') else new_dir[:-1]
            elif node.startswith(old_dir):
                moved = new_dir + node[len(old_dir):]
            else:
                return node
            changes.append(f'{key}: {node} -> {moved}')
            return moved
        if isinstance(node, (dict, list)) and id(node) not in seen:
            seen.add(id(node))
            for k in list(node) if isinstance(node, dict) else range(len(node)):
                node[k] = move(node[k], f'{key}.{k}' if isinstance(node, dict) else f'{key}[{k}]')
        return node

    for name in DATA_ROOT_USERS:
        if name in cfg:
            move(cfg[name], name)
    if not changes:
        raise ValueError(f'--cfg-options data_root={new_root}: no dataloader or evaluator of this '
                         f'config uses its data_root ({old_root}); {explicit}')
    cfg.data_root = new_dir if old_root.endswith('/') else new_dir.rstrip('/')
    return changes


def replace_sync_bn(node):
    """Turn every dict of a SyncBN type in a config tree into BN, in place; return how many. A
    backbone named by its ``arch`` gets its preset's ``norm_cfg`` written out first, so that a
    SyncBN the preset holds is turned too."""
    if isinstance(node, (list, tuple)):
        return sum(map(replace_sync_bn, node))
    if not isinstance(node, dict):
        return 0
    if has_presets(node.get('type')) and 'arch' in node and 'norm_cfg' not in node:
        preset_norm = arch_settings(node['type'], node['arch']).get('norm_cfg')
        if preset_norm is not None:
            node['norm_cfg'] = preset_norm
    synced = node.get('type') in ('SyncBN', 'SyncBatchNorm', 'MMSyncBN', 'TorchSyncBN')
    if synced:
        node['type'] = 'BN'
    return synced + sum(map(replace_sync_bn, node.values()))


def adapt_to_cpu(cfg):
    """Make ``cfg`` run without CUDA (a no-op with CUDA); return what was changed, for the log."""
    if torch.cuda.is_available():
        return []
    changes = []
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if (backend := dist_cfg.get('backend', 'nccl')) != 'gloo':
        changes.append(f'env_cfg.dist_cfg.backend: {backend} -> gloo')
        dist_cfg['backend'] = 'gloo'
    # the whole config: base files also keep the backbone dict as a top-level variable
    if replaced := sum(replace_sync_bn(cfg[key]) for key in list(cfg.keys())):
        changes.append(f'{replaced} SyncBN norm config(s) -> BN')
    if cfg.launcher != 'none':
        hooks = cfg.setdefault('custom_hooks', [])
        if not any(str(h.get('type')).endswith('SyncBuffersHook') for h in hooks):
            # each process's BN statistics would drift apart: validation and the checkpoint (rank
            # 0's) would disagree. mmengine's hook averages them before each validation and save
            hooks.append(dict(type='SyncBuffersHook'))
            changes.append('custom_hooks: + SyncBuffersHook (BN statistics averaged over the '
                           'processes, as SyncBN keeps them alike)')
        # mmengine's default DDP wrapper passes device_ids=[LOCAL_RANK]: a CUDA device
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
        changes.append('model_wrapper_cfg: DistributedDataParallel with device_ids=None (CPU)')
    return changes


def init_cpu_process_group(cfg):
    """Start the gloo process group of a CPU run under torchrun: mmengine's would select a CUDA
    device first (the runner skips it when a group exists)."""
    if cfg.launcher == 'none' or torch.cuda.is_available() or is_distributed():
        return
    if cfg.launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {cfg.launcher} needs CUDA; on a CPU-only machine start several '
            'processes with torchrun (tools/dist_train.sh, tools/dist_test.sh: --launcher pytorch)')
    dist_cfg = cfg.env_cfg.dist_cfg
    timeout = dist_cfg.get('timeout')
    torch_dist.init_process_group(
        backend=dist_cfg.get('backend', 'gloo'), rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **({} if timeout is None else dict(timeout=timedelta(seconds=timeout))))


def close_process_group():
    """Destroy the default process group, if any, once the run succeeded, and free it (the caller
    drops its runner first): gloo's threads live as long as the group, which DDP keeps in reference
    cycles; left to interpreter exit they abort the ranks (SIGABRT, pytorch/pytorch#179291)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
        gc.collect()


def build_runner(cfg):
    """Adapt ``cfg`` to the machine and build its runner as mmdet's tools do (``runner_type``,
    else mmengine's Runner). With a ``strategy`` (docs/sharding.md), a ``runner_type`` that is no
    FlexibleRunner (the base configs' SafeLoadRunner) becomes ``SafeFlexibleRunner`` (logged)."""
    cfg.setdefault('launcher', 'none')  # configs built without load_config (the quickstart)
    changes = [f'no CUDA: {change}' for change in adapt_to_cpu(cfg)]
    init_cpu_process_group(cfg)
    runner_type = cfg.get('runner_type', 'Runner')
    if cfg.get('strategy') and not issubclass(RUNNERS.get(runner_type), FlexibleRunner):
        changes.append(f'strategy {cfg.strategy.get("type")}: runner_type {runner_type} -> '
                       'SafeFlexibleRunner')
        cfg.runner_type = 'SafeFlexibleRunner'
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    for change in changes:
        runner.logger.info(change)
    return runner
