"""DINOv2 ViT-Adapter detectors for MMDetection 3.x: importing this package (``custom_imports`` in
the configs) registers its modules and routes every checkpoint mmengine reads through the safe
reader, through public extension points only."""
from . import datasets, engine, models  # noqa: F401  (registers modules)
from .checkpoints import mmengine_schemes

mmengine_schemes.register()

__version__ = '0.1.0'
