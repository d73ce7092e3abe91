from . import backbones, layers  # noqa: F401
from .config_checks import check_backbone_neck

__all__ = ['check_backbone_neck']
