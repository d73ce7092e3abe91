"""Checkpoint files: safe loading, and DINOv2 / ViT-Adapter weights for the ViTAdapter backbone."""
from .dinov2 import (convert_dinov2, detect_format, load_backbone_weights,
                     resample_patch_embed_kernel, strip_prefix)
from .io import (CheckpointError, UnsafeCheckpointError, load_checkpoint_file,
                 load_state_dict_file, save_state_dict_file)

__all__ = ['CheckpointError', 'UnsafeCheckpointError', 'load_checkpoint_file',
           'load_state_dict_file', 'save_state_dict_file', 'convert_dinov2', 'detect_format',
           'load_backbone_weights', 'resample_patch_embed_kernel', 'strip_prefix']
