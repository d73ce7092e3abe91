"""The import path models/backbones used before ``convert/``; nothing else may use it."""
from .convert.dinov3 import *  # noqa: F401,F403
