"""Checkpoint files: read safely, converted, compared with a model (docs/architecture.md lists the
modules)."""
from .allowlist import safe_globals
from .compare import CheckpointMismatchError, compare_state_dict
from .convert.dinov2 import convert_dinov2, detect_format, resample_patch_embed_kernel, strip_prefix
from .io import (CheckpointError, UnsafeCheckpointError, load_checkpoint_file, load_state_dict_file,
                 save_state_dict_file)
from .load import load_backbone_weights
from .remote import REMOTE_PREFIXES, DownloadError, is_url
from .trust import checkpoints_trusted, trusted_checkpoints

__all__ = ['CheckpointError', 'CheckpointMismatchError', 'DownloadError', 'REMOTE_PREFIXES',
           'UnsafeCheckpointError', 'checkpoints_trusted', 'compare_state_dict', 'convert_dinov2',
           'detect_format', 'is_url', 'load_backbone_weights', 'load_checkpoint_file',
           'load_state_dict_file', 'resample_patch_embed_kernel', 'safe_globals',
           'save_state_dict_file', 'strip_prefix', 'trusted_checkpoints']
