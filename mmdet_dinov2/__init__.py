"""DINOv2 ViT-Adapter detectors for MMDetection 3.x.

Importing this package registers its modules into mmdet's registries; configs load it with
``custom_imports = dict(imports=['mmdet_dinov2'], allow_failed_imports=False)``.
"""
from . import datasets, engine, models  # noqa: F401  (registers modules)
from .utils import install_mmengine_guards

install_mmengine_guards()  # mmengine: refuse unsafe checkpoints, write local files atomically

__version__ = '0.1.0'
