from .vit import ViT
from .vit_adapter import ViTAdapter

__all__ = ['ViT', 'ViTAdapter']
