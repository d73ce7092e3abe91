from .adapter import (AdapterGeometry, ConvFFN, Extractor, Injector, InteractionBlock,
                      SpatialPriorModule, maybe_checkpoint)
from .linear import Linear, linear
from .ms_deform_attn import MSDeformAttn, deform_attn, deform_attn_cpu

__all__ = ['AdapterGeometry', 'ConvFFN', 'Extractor', 'Injector', 'InteractionBlock', 'Linear',
           'MSDeformAttn', 'SpatialPriorModule', 'deform_attn', 'deform_attn_cpu', 'linear',
           'maybe_checkpoint']
