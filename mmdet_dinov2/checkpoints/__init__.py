"""Everything about checkpoint files: reading them safely, trusting them, converting DINOv2 /
ViT-Adapter weights, and comparing a state dict with a model."""
from .allowlist import safe_globals
from .compare import CheckpointMismatchError, LoadReport, compare_state_dict, non_finite_tensors
from .dinov2 import (convert_dinov2, detect_format, load_backbone_weights,
                     resample_patch_embed_kernel, strip_prefix)
from .io import (CheckpointError, UnsafeCheckpointError, load_checkpoint_file,
                 load_state_dict_file, save_state_dict_file)
from .remote import DownloadError
from .trust import checkpoints_trusted, trusted_checkpoints

__all__ = ['CheckpointError', 'CheckpointMismatchError', 'DownloadError', 'LoadReport',
           'UnsafeCheckpointError', 'checkpoints_trusted', 'compare_state_dict', 'convert_dinov2',
           'detect_format', 'load_backbone_weights', 'load_checkpoint_file',
           'load_state_dict_file', 'non_finite_tensors', 'resample_patch_embed_kernel',
           'safe_globals', 'save_state_dict_file', 'strip_prefix', 'trusted_checkpoints']
