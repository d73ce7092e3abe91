"""DINOv2 ViT-Adapter detectors for MMDetection 3.x.

Importing this package registers its modules into mmdet's registries and its safe checkpoint
readers into mmengine's ``CheckpointLoader`` (public extension points only: no attribute of
another package is replaced); configs load it with
``custom_imports = dict(imports=['mmdet_dinov2'], allow_failed_imports=False)``.
"""
from . import datasets, engine, models  # noqa: F401  (registers modules)
from .checkpoints import mmengine_schemes

mmengine_schemes.register()  # every checkpoint mmengine reads goes through the safe reader

__version__ = '0.1.0'
