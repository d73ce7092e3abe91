from .adapter import (AdapterGeometry, ConvFFN, Extractor, Injector, InteractionBlock,
                      SpatialPriorModule, maybe_checkpoint)
from .linear import OneDNNLinear, onednn_linear
from .ms_deform_attn import MSDeformAttn, deform_attn, deform_attn_cpu

__all__ = ['AdapterGeometry', 'ConvFFN', 'Extractor', 'Injector', 'InteractionBlock', 'MSDeformAttn',
           'OneDNNLinear', 'SpatialPriorModule', 'deform_attn', 'deform_attn_cpu', 'maybe_checkpoint',
           'onednn_linear']
