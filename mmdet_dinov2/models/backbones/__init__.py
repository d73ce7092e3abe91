from .dinov3_adapter import DINOv3Adapter
from .vit import ViT
from .vit_adapter import ViTAdapter

__all__ = ['DINOv3Adapter', 'ViT', 'ViTAdapter']
