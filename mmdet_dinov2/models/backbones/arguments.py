"""Constructor-argument checks of ViT and ViTAdapter, in one place.

Each check raises before any layer is built, with a message that names the argument, the value
given and what is valid: a TypeError for a value of the wrong kind (a float or a bool where an
integer belongs), a ValueError for a value of the right kind that cannot work.
"""
import math
import numbers
from typing import List, Optional, Sequence, Tuple

# the ViTAdapter's four maps, strides 4, 8, 16, 32
NUM_MAPS = 4


def positive_int(name: str, value) -> int:
    """``value`` if it is an integer >= 1; bools are refused (True would read as 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f'{name}={value!r} ({type(value).__name__}): must be a positive integer')
    if value < 1:
        raise ValueError(f'{name}={value!r}: must be a positive integer')
    return int(value)


def positive_number(name: str, value) -> float:
    """``value`` if it is a finite real number > 0; bools are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name}={value!r} ({type(value).__name__}): must be a positive number')
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f'{name}={value!r}: must be a positive, finite number')
    return float(value)


# SwiGLU hidden widths are rounded up to a multiple of this (DINOv2 and DINOv3: 8; DINOv3 7B: 64)
SWIGLU_ALIGN = {'swiglu': 8, 'swiglu64': 64}


def ffn_hidden_dim(embed_dim: int, mlp_ratio: float, ffn_type: str) -> int:
    """Hidden width of a ViT block's FFN: int(embed_dim * mlp_ratio); for 'swiglu' / 'swiglu64'
    (DINOv2's and DINOv3's SwiGLU) two thirds of that, rounded up to a multiple of 8 / 64."""
    hidden = int(embed_dim * mlp_ratio)
    if ffn_type not in SWIGLU_ALIGN:
        return hidden
    gated = int(hidden * 2 / 3)
    return gated + (-gated % SWIGLU_ALIGN[ffn_type])


def check_vit_arguments(pretrain_size: int, patch_size: int, embed_dim: int, depth: int, num_heads: int,
                        mlp_ratio: float, ffn_type: str, drop_path_rate: float):
    """The ViT's sizes: positive integers, embed_dim split evenly into heads, a non-empty FFN, a
    position grid of at least one patch and a stochastic depth rate in [0, 1)."""
    for name, value in (('pretrain_size', pretrain_size), ('patch_size', patch_size),
                        ('embed_dim', embed_dim), ('depth', depth), ('num_heads', num_heads)):
        positive_int(name, value)
    positive_number('mlp_ratio', mlp_ratio)
    if embed_dim % num_heads:
        raise ValueError(f'embed_dim={embed_dim} must be divisible by num_heads={num_heads} (each head '
                         f'gets embed_dim / num_heads channels)')
    if pretrain_size < patch_size:
        raise ValueError(f'pretrain_size={pretrain_size} is smaller than patch_size={patch_size}: the '
                         f'position embedding would have no patch')
    hidden = ffn_hidden_dim(embed_dim, mlp_ratio, ffn_type)
    if hidden < 1:
        raise ValueError(f'mlp_ratio={mlp_ratio!r} gives embed_dim={embed_dim} an FFN hidden width of '
                         f'{hidden}; it needs at least 1 channel (e.g. mlp_ratio=4)')
    if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, numbers.Real):
        raise TypeError(f'drop_path_rate={drop_path_rate!r} ({type(drop_path_rate).__name__}): must be a '
                        f'number in [0, 1)')
    if not 0 <= drop_path_rate < 1:
        raise ValueError(f'drop_path_rate={drop_path_rate!r}: must be in [0, 1) (1 would drop every '
                         f'residual branch)')


def check_interaction_indexes(interaction_indexes, depth: int) -> List[List[int]]:
    """[[first, last], ...] integer groups covering blocks 0..depth-1 in order, each non-empty."""
    groups = interaction_indexes if isinstance(interaction_indexes, (list, tuple)) else []
    fits, next_first = len(groups) > 0, 0
    for group in groups:
        fits = (fits and isinstance(group, (list, tuple)) and len(group) == 2
                and all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in group)
                and group[0] == next_first and group[1] >= group[0])
        if not fits:
            break
        next_first = group[1] + 1
    if not fits or next_first != depth:
        raise ValueError(f'interaction_indexes={interaction_indexes!r} does not fit depth={depth}: give '
                         f'[[first, last], ...] integer groups covering blocks 0..{depth - 1} '
                         f'contiguously in order, e.g. [[0, 2], [3, 5], [6, 8], [9, 11]] for depth 12')
    return [[int(i) for i in g] for g in groups]


def check_out_indices(out_indices) -> Tuple[int, ...]:
    """A non-empty, strictly increasing sequence of map indices from 0..3."""
    valid = (isinstance(out_indices, (list, tuple)) and len(out_indices) > 0
             and all(isinstance(i, numbers.Integral) and not isinstance(i, bool) and 0 <= i < NUM_MAPS
                     for i in out_indices)
             and all(a < b for a, b in zip(out_indices, out_indices[1:])))
    if not valid:
        raise ValueError(f'out_indices={out_indices!r}: give increasing map indices from 0..{NUM_MAPS - 1} '
                         f'(0 = stride 4, 1 = 8, 2 = 16, 3 = 32), e.g. (0, 1, 2, 3)')
    return tuple(int(i) for i in out_indices)


def check_adapter_arguments(embed_dim: int, depth: int, conv_inplane: int, n_points: int,
                            deform_num_heads: int, deform_ratio: float, with_cffn: bool,
                            cffn_ratio: float, interaction_indexes: Optional[Sequence[Sequence[int]]],
                            out_indices: Sequence[int]) -> Tuple[List[List[int]], Tuple[int, ...]]:
    """The adapter's sizes; returns interaction_indexes as lists and out_indices as a tuple.

    embed_dim and depth are checked here too (they are the ViT's, but the adapter's checks use them).
    """
    for name, value in (('embed_dim', embed_dim), ('depth', depth), ('conv_inplane', conv_inplane),
                        ('n_points', n_points), ('deform_num_heads', deform_num_heads)):
        positive_int(name, value)
    positive_number('deform_ratio', deform_ratio)
    if embed_dim % deform_num_heads:
        raise ValueError(f'deform_num_heads={deform_num_heads} must divide embed_dim={embed_dim}')
    value_dim = int(embed_dim * deform_ratio)
    if value_dim < 1 or value_dim % deform_num_heads:
        raise ValueError(f'deform_ratio={deform_ratio!r}: the deformable attention value width '
                         f'int(embed_dim * deform_ratio) = int({embed_dim} * {deform_ratio}) = {value_dim} '
                         f'must be a positive multiple of deform_num_heads={deform_num_heads}')
    if with_cffn:
        positive_number('cffn_ratio', cffn_ratio)
        if int(embed_dim * cffn_ratio) < 1:
            raise ValueError(f'cffn_ratio={cffn_ratio!r}: the ConvFFN hidden width int(embed_dim * '
                             f'cffn_ratio) = int({embed_dim} * {cffn_ratio}) is 0; it needs at least 1 '
                             f'channel (e.g. cffn_ratio=0.25)')
    return check_interaction_indexes(interaction_indexes, depth), check_out_indices(out_indices)
