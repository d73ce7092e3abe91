from . import backbones, layers  # noqa: F401
from .config_checks import check_backbone_neck, check_num_classes

__all__ = ['check_backbone_neck', 'check_num_classes']
