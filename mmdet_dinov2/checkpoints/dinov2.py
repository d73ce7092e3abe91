"""The import path models/backbones used before ``convert/`` and ``load.py``; nothing else may use it."""
from .convert.dinov2 import *  # noqa: F401,F403
from .load import config_to_use, load_backbone_weights  # noqa: F401
