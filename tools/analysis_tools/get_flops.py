"""Multiply-adds, FLOPs and parameters of a detector's forward pass on one image, attention included.

    python tools/analysis_tools/get_flops.py configs/vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py
    python tools/analysis_tools/get_flops.py CONFIG --shape 1024 1024 --no-mmengine
    python tools/analysis_tools/get_flops.py --arch-table   # the README table: S/B/L/g, two sizes
    python tools/analysis_tools/get_flops.py --arch-table --mmengine   # and mmengine's column (slow on a CPU)

What is counted: the backbone, the neck, the RPN head and, unless ``--no-roi``, the RoI heads on a
fixed number of boxes: the bbox head on ``test_cfg.rpn.max_per_img`` proposals (1000) and the mask head
on ``test_cfg.rcnn.max_per_img`` detections (100), the numbers the test-time pipeline runs at most.
Not counted: RoIAlign (its sampling ratio 0 adapts to each box's size), NMS and box decoding,
normalization, activations, softmax and other elementwise work (torch's counter leaves them out;
mmengine's counts norms and interpolation, about 0.3% here).

Conventions: one multiply-add (MAC) is one multiplication plus one addition; FLOPs = 2 x MACs.
mmdet's ``tools/analysis_tools/get_flops.py`` prints mmengine's ``get_model_complexity_info`` as
"Flops", which counts one fused multiply-add as one flop: its "Flops" are MACs (this tool's MACs
column), half of the FLOPs printed here.

How: ``torch.utils.flop_counter.FlopCounterMode`` counts the matrix products, convolutions and
scaled-dot-product attention (SDPA) at the dispatcher. By default the model is built and run on the
``meta`` device (shapes only: no memory and no arithmetic, so any size and ViT-g cost seconds); there
SDPA runs as its math decomposition, two batched products per attention, which the counter sees as
``bmm``. ``--device cpu`` runs real tensors (and the fused CPU SDPA kernel and the project's oneDNN
linear path, both counted through ``custom_mapping``); the tests check that both devices agree.
Multi-scale deformable attention samples its values in mmcv's CUDA kernel or, on the CPU, in an
``embedding_bag``, neither of which any counter knows; hooks on the ``MSDeformAttn`` modules add

    MACs = batch x queries x heads x levels x points x head_dim x (4 + 1)

per call: each sampling point reads its four bilinear corners (4 multiply-adds per channel) and adds
the result weighted by its attention weight (1 more); the projections around the sampling are linear
layers, counted by the counter. mmengine's counter (printed beside ours, run on the same modules and
input) has no rule for SDPA nor for the deformable sampling and skips both (its log lists
``aten::scaled_dot_product_attention`` and ``prim::PythonOp._BilinearRowSum`` as unsupported); its
linear and convolution rules give the same numbers as torch's.
"""
import argparse
import contextlib
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, sdpa_flop_count

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from mmdet_dinov2.models.backbones.vit import Block  # noqa: E402
from mmdet_dinov2.models.layers import Extractor, Injector, MSDeformAttn, SpatialPriorModule  # noqa: E402

aten = torch.ops.aten
ARCH_CONFIGS = {arch: f'configs/vit_adapter/mask-rcnn_dinov2-adapter-{arch.lower()}_fpn_3x_coco.py'
                for arch in 'SBLg'}
ARCH_SHAPES = ((1024, 1024), (800, 1333))
SAMPLING_MACS_PER_CHANNEL = 4 + 1  # four bilinear corners, then the attention-weighted sum
DEFORM_KEY = 'ms_deform_attn_sampling'  # the counter's key for the hooks' FLOPs
# SDPA, and the batched products of its math decomposition (meta device); nothing else in the
# detectors of this project runs a batched product
ATTENTION_OPS = {aten.bmm, aten.baddbmm, aten._scaled_dot_product_efficient_attention,
                 aten._scaled_dot_product_flash_attention, aten._scaled_dot_product_cudnn_attention,
                 aten._scaled_dot_product_flash_attention_for_cpu}
KINDS = ('matmul/conv', 'attention (SDPA)', 'deformable sampling')
PARTS = ('ViT: patch embedding', 'ViT: blocks', 'Adapter: SPM', 'Adapter: injectors',
         'Adapter: extractors', 'Adapter: other', 'Neck', 'RPN head', 'RoI bbox head', 'RoI mask head')


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _mkldnn_conv_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


# ops FlopCounterMode has no rule for, that a real CPU run reaches: the fused CPU SDPA kernel and
# torch.mkldnn_convolution, behind mmdet_dinov2.models.layers.linear for large float32 products
CPU_MAPPING = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
               aten.mkldnn_convolution: _mkldnn_conv_flop}


def deform_sampling_macs(module: MSDeformAttn, query: Tensor) -> int:
    """Multiply-adds of one MSDeformAttn call's sampling (see the module docstring)."""
    batch, queries = query.shape[:2]
    value_dim = module.value_proj.out_features  # heads x head_dim
    return (batch * queries * module.num_levels * module.num_points * value_dim
            * SAMPLING_MACS_PER_CHANNEL)


def attention_macs(batch: int, heads: int, queries: int, keys: int, head_dim: int) -> int:
    """Multiply-adds of one SDPA call: q @ k^T and weights @ v."""
    return 2 * batch * heads * queries * keys * head_dim


@dataclass
class Count:
    """Multiply-adds by part and kind (see PARTS and KINDS) and parameters by part."""
    shape: Tuple[int, int]  # the padded input, (H, W)
    macs: Dict[str, Dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    params: Dict[str, int] = field(default_factory=lambda: defaultdict(int))
    proposals: int = 0
    detections: int = 0

    def total(self, kind: Optional[str] = None) -> int:
        return sum(n for kinds in self.macs.values() for k, n in kinds.items() if kind in (None, k))

    def part_total(self, part: str) -> int:
        return sum(self.macs.get(part, {}).values())


class DetectorForward(nn.Module):
    """The counted forward of a two-stage detector: backbone, neck, RPN head and, with ``proposals``
    and ``detections`` > 0, the bbox and mask heads on that many RoI feature maps (zeros: RoIAlign
    and NMS are not counted)."""

    def __init__(self, detector: nn.Module, proposals: int = 0, detections: int = 0):
        super().__init__()
        self.detector = detector
        self.proposals = proposals
        self.detections = detections

    def roi_input(self, extractor: nn.Module, num: int, like: Tensor) -> Tensor:
        size = extractor.roi_layers[0].output_size
        size = size if isinstance(size, tuple) else (size, size)
        return like.new_zeros(num, extractor.out_channels, *size)

    def forward(self, img: Tensor):
        det = self.detector
        feats = det.backbone(img)
        feats = det.neck(feats)
        outs = [det.rpn_head(feats)]
        roi_head = getattr(det, 'roi_head', None)
        if roi_head is not None and self.proposals:
            outs.append(roi_head.bbox_head(self.roi_input(roi_head.bbox_roi_extractor, self.proposals, img)))
        if roi_head is not None and getattr(roi_head, 'with_mask', False) and self.detections:
            outs.append(roi_head.mask_head(self.roi_input(roi_head.mask_roi_extractor, self.detections, img)))
        return outs


def padded_shape(shape: Sequence[int], divisor: int) -> Tuple[int, int]:
    """(H, W) padded up to multiples of divisor, as the data preprocessor pads a batch."""
    return tuple(int(math.ceil(s / divisor) * divisor) for s in shape)


def load_detector_config(config: str, cfg_options: Optional[dict] = None):
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_detector(cfg, device: str = 'meta') -> nn.Module:
    """The config's model without pretrained weights, SyncBN as BN, in eval mode, on ``device``."""
    import mmdet_dinov2  # noqa: F401  (registers the project's modules)
    from mmdet.registry import MODELS
    from mmdet_dinov2.engine.launch import replace_sync_bn
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = cfg.model.copy()
    model_cfg.backbone.pop('pretrained', None)
    model_cfg.backbone.pop('init_cfg', None)
    replace_sync_bn(model_cfg)  # SyncBN needs a process group; BN computes the same in eval mode
    with torch.device(device):
        model = MODELS.build(model_cfg)
    return model.eval()


def part_of_module(detector: nn.Module) -> Dict[nn.Module, str]:
    """The modules whose calls make up each part of PARTS that is not a whole top-level module."""
    parts = {}
    backbone = detector.backbone
    if hasattr(backbone, 'patch_embed'):
        parts[backbone.patch_embed] = PARTS[0]
    for m in backbone.modules():
        if isinstance(m, Block):
            parts[m] = PARTS[1]
        elif isinstance(m, SpatialPriorModule):
            parts[m] = PARTS[2]
        elif isinstance(m, Injector):
            parts[m] = PARTS[3]
        elif isinstance(m, Extractor):
            parts[m] = PARTS[4]
    return parts


def parameters_by_part(detector: nn.Module) -> Dict[str, int]:
    """Parameters of each part; the backbone's parameters outside the listed adapter modules and
    blocks (patch embedding, position embedding, prefix tokens, the ViT's final norm) count as
    'ViT: patch embedding', the adapter's level embedding, up-sampling and output norms as
    'Adapter: other'."""
    owner = {}
    for module, part in part_of_module(detector).items():
        for p in module.parameters():
            owner[id(p)] = part
    backbone = detector.backbone
    for name in ('level_embed', 'up', 'norm1', 'norm2', 'norm3', 'norm4'):
        item = getattr(backbone, name, None)
        if isinstance(item, nn.Parameter):
            owner[id(item)] = PARTS[5]
        elif isinstance(item, nn.Module):
            owner.update((id(p), PARTS[5]) for p in item.parameters())
    tops = [('neck', PARTS[6]), ('rpn_head', PARTS[7])]
    roi_head = getattr(detector, 'roi_head', None)
    if roi_head is not None:
        tops += [('roi_head.bbox_head', PARTS[8]), ('roi_head.mask_head', PARTS[9])]
    for name, part in tops:
        with contextlib.suppress(AttributeError):
            for p in detector.get_submodule(name).parameters():
                owner[id(p)] = part
    params = defaultdict(int)
    for p in detector.parameters():
        params[owner.get(id(p), PARTS[0])] += p.numel()
    return params


def op_kind(op) -> str:
    """The column of KINDS an op's count goes to."""
    return KINDS[2] if op == DEFORM_KEY else KINDS[1] if op in ATTENTION_OPS else KINDS[0]


class MacCounter:
    """``FlopCounterMode`` plus the deformable sampling of ``model``'s MSDeformAttn modules.

    Inside ``with MacCounter(model) as c:``, ``c.flops`` maps each op (and DEFORM_KEY) to its FLOPs so
    far; :meth:`macs` gives the multiply-adds by kind.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.counter = FlopCounterMode(display=False, custom_mapping=CPU_MAPPING)
        self.flops = {}
        self.handles = []

    def _deform_hook(self, module, args, kwargs, output):
        query = kwargs['query'] if 'query' in kwargs else args[0]
        self.flops[DEFORM_KEY] = self.flops.get(DEFORM_KEY, 0) + 2 * deform_sampling_macs(module, query)

    def __enter__(self) -> 'MacCounter':
        self.handles = [m.register_forward_hook(self._deform_hook, with_kwargs=True)
                        for m in self.model.modules() if isinstance(m, MSDeformAttn)]
        self.counter.__enter__()
        self.flops = self.counter.flop_counts['Global']  # the counter makes it anew on entering
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        return self.counter.__exit__(*exc)

    def macs(self, since: Optional[Dict] = None) -> Dict[str, int]:
        """Multiply-adds by kind: all so far, or since the snapshot ``since`` (a copy of ``flops``)."""
        out = defaultdict(int)
        for op, n in self.flops.items():
            delta = n - (since or {}).get(op, 0)
            if delta:
                out[op_kind(op)] += delta // 2  # every counted op does whole multiply-adds
        return dict(out)


def count_flops(detector: nn.Module, shape: Sequence[int], proposals: int = 0, detections: int = 0,
                device: Optional[str] = None) -> Count:
    """Count the MACs of ``DetectorForward(detector, proposals, detections)`` on one (1, 3, H, W)
    image, by part and kind, and the parameters by part.

    Args:
        detector (nn.Module): a two-stage detector (backbone, neck, rpn_head, optional roi_head).
        shape (sequence of int): (H, W) as given to the backbone, already padded.
        proposals (int): RoIs through the bbox head (0: not counted).
        detections (int): RoIs through the mask head (0: not counted).
        device (str, optional): where the image is made; default the detector's device.
    """
    device = device or next(detector.parameters()).device
    count = Count(shape=tuple(shape), proposals=proposals, detections=detections)
    counter = MacCounter(detector)
    starts = {}

    def pre_hook(module, args):
        starts[module] = dict(counter.flops)

    def post_hook(part):
        def hook(module, args, output):
            for kind, n in counter.macs(since=starts.pop(module)).items():
                count.macs[part][kind] += n
        return hook

    parts = part_of_module(detector)
    parts.update({detector.backbone: 'backbone', detector.neck: PARTS[6], detector.rpn_head: PARTS[7]})
    roi_head = getattr(detector, 'roi_head', None)
    if roi_head is not None:
        parts[roi_head.bbox_head] = PARTS[8]
        if getattr(roi_head, 'with_mask', False):
            parts[roi_head.mask_head] = PARTS[9]
    handles = []
    for module, part in parts.items():
        handles += [module.register_forward_pre_hook(pre_hook), module.register_forward_hook(post_hook(part))]
    try:
        img = torch.zeros(1, 3, *shape, device=device)
        with torch.no_grad(), counter:
            DetectorForward(detector, proposals, detections)(img)
    finally:
        for h in handles:
            h.remove()
    # the backbone's own part: what its listed parts do not hold (up-sampling deconvolution)
    backbone = count.macs.pop('backbone', {})
    for kind, n in backbone.items():
        inner = sum(count.macs[p].get(kind, 0) for p in PARTS[:5])
        if n - inner:
            count.macs[PARTS[5]][kind] += n - inner
    total = sum(counter.macs().values())
    if total != count.total():
        raise RuntimeError(f'get_flops: the parts hold {count.total()} MACs of the {total} counted; '
                           'a counted op ran outside the parts (a new submodule or head?)')
    count.params.update(parameters_by_part(detector))
    return count


def mmengine_macs(detector: nn.Module, shape: Sequence[int], proposals: int = 0, detections: int = 0,
                  device: Optional[str] = None) -> Dict[str, int]:
    """mmengine's count (``FlopAnalyzer``, behind ``get_model_complexity_info`` and mmdet's get_flops)
    of the same forward as :func:`count_flops`, by operator; one "flop" there is one multiply-add."""
    from mmengine.analysis import FlopAnalyzer
    device = device or next(detector.parameters()).device
    img = torch.zeros(1, 3, *shape, device=device)
    with torch.no_grad():
        analyzer = FlopAnalyzer(DetectorForward(detector, proposals, detections), (img,))
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_op = dict(analyzer.by_operator())
    return by_op


def giga(n: int) -> str:
    return f'{n / 1e9:.1f}'


def format_count(count: Count, mmengine: Optional[Dict[str, int]] = None) -> str:
    """A markdown table of the parts, the totals and the conventions."""
    lines = [f'Input (padded): {count.shape[0]}x{count.shape[1]}, batch 1. '
             f'GMACs = 1e9 multiply-adds; FLOPs = 2 x MACs.',
             f'RoI heads: bbox head on {count.proposals} proposals, mask head on {count.detections} '
             'detections (0: not counted); RoIAlign, NMS and elementwise ops not counted.', '',
             '| part | ' + ' | '.join(f'{k} GMACs' for k in KINDS) + ' | total GMACs | params (M) |',
             '|---' * (len(KINDS) + 3) + '|']
    for part in PARTS:
        if part in count.macs or count.params.get(part):
            cells = [giga(count.macs.get(part, {}).get(k, 0)) for k in KINDS]
            lines.append(f'| {part} | ' + ' | '.join(cells)
                         + f' | {giga(count.part_total(part))} | {count.params.get(part, 0) / 1e6:.2f} |')
    cells = [giga(count.total(k)) for k in KINDS]
    params = sum(count.params.values())
    lines.append('| **total** | ' + ' | '.join(cells) + f' | **{giga(count.total())}** | **{params / 1e6:.2f}** |')
    lines += ['', f'Total: {giga(count.total())} GMACs = {giga(2 * count.total())} GFLOPs, '
                  f'{params / 1e6:.2f} M parameters']
    if mmengine is not None:
        products = mmengine.get('linear', 0) + mmengine.get('conv', 0) + mmengine.get('matmul', 0)
        others = ', '.join(f'{op} {giga(n)}' for op, n in mmengine.items() if op not in ('linear', 'conv', 'matmul'))
        lines += ['', f'mmengine get_model_complexity_info (mmdet get_flops "Flops", which are MACs): '
                      f'{giga(sum(mmengine.values()))} G = linear/conv/matmul {giga(products)} '
                      f'(this count: {giga(count.total(KINDS[0]))}) + {others}.',
                  f'It skips SDPA ({giga(count.total(KINDS[1]))} GMACs) and the deformable sampling '
                  f'({giga(count.total(KINDS[2]))} GMACs): {giga(count.total(KINDS[1]) + count.total(KINDS[2]))} '
                  f'GMACs, {100 * (count.total(KINDS[1]) + count.total(KINDS[2])) / count.total():.1f}% of the '
                  'total here.']
    return '\n'.join(lines)


def arch_table(shapes=ARCH_SHAPES, with_mmengine: bool = False, roi: bool = True, device: str = 'meta') -> str:
    """The README table: each ARCH_CONFIGS detector at each input shape."""
    lines = ['| model | input -> padded | params (M) | GMACs | of which SDPA | of which deformable sampling '
             '| mmengine GMACs (mmdet get_flops "Flops") | GFLOPs (2 x MACs) |', '|---' * 8 + '|']
    for arch, config in ARCH_CONFIGS.items():
        for shape in shapes:
            count, engine = count_config(str(ROOT / config), shape, roi=roi, device=device,
                                         with_mmengine=with_mmengine)
            lines.append(f'| ViT-Adapter-{arch} Mask R-CNN | {shape[0]}x{shape[1]} -> '
                         f'{count.shape[0]}x{count.shape[1]} | {sum(count.params.values()) / 1e6:.1f} '
                         f'| {giga(count.total())} | {giga(count.total(KINDS[1]))} '
                         f'| {giga(count.total(KINDS[2]))} | {"-" if engine is None else giga(sum(engine.values()))} '
                         f'| {giga(2 * count.total())} |')
    return '\n'.join(lines)


def roi_numbers(cfg) -> Tuple[int, int]:
    """(proposals, detections) of the config's test_cfg: the most boxes its RoI heads see."""
    test_cfg = cfg.model.get('test_cfg') or {}
    return (test_cfg.get('rpn', {}).get('max_per_img', 1000), test_cfg.get('rcnn', {}).get('max_per_img', 100))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='detector config file')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'),
                        help='input height and width before padding to pad_size_divisor (default 800 1333)')
    parser.add_argument('--arch-table', action='store_true',
                        help='print the markdown table of the S/B/L/g configs at 1024x1024 and 800x1333')
    parser.add_argument('--no-roi', action='store_true', help='leave the RoI heads out')
    parser.add_argument('--proposals', type=int, help='RoIs through the bbox head (default test_cfg.rpn.max_per_img)')
    parser.add_argument('--detections', type=int,
                        help='RoIs through the mask head (default test_cfg.rcnn.max_per_img)')
    parser.add_argument('--device', default='meta',
                        help="where to count: 'meta' (shapes only, default) or 'cpu'/'cuda' (real tensors)")
    parser.add_argument('--mmengine', action=argparse.BooleanOptionalAction, default=None,
                        help="also run mmengine's get_model_complexity_info, on real tensors (CUDA if "
                             'available, else the CPU: minutes for the large models); default: on for '
                             'one config, off for --arch-table')
    args = parser.parse_args(argv)
    if not args.arch_table and args.config is None:
        parser.error('give a CONFIG or --arch-table')
    return args


def real_device(device: str) -> str:
    """A device with real tensors for mmengine's tracer (it cannot trace on 'meta')."""
    if device != 'meta':
        return device
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def count_config(config: str, shape: Sequence[int], roi: bool = True, proposals: Optional[int] = None,
                 detections: Optional[int] = None, device: str = 'meta',
                 with_mmengine: bool = False) -> Tuple[Count, Optional[Dict[str, int]]]:
    """:func:`count_flops` (and :func:`mmengine_macs`, by operator) of a config's detector on one image of
    ``shape`` padded like its data preprocessor pads."""
    cfg = load_detector_config(config)
    divisor = cfg.model.data_preprocessor.get('pad_size_divisor', 1)
    padded = padded_shape(shape, divisor)
    default_proposals, default_detections = roi_numbers(cfg) if roi else (0, 0)
    proposals = default_proposals if proposals is None else proposals
    detections = default_detections if detections is None else detections
    count = count_flops(build_detector(cfg, device), padded, proposals, detections)
    engine = None
    if with_mmengine:
        detector = build_detector(cfg, real_device(device))
        engine = mmengine_macs(detector, padded, proposals, detections)
    return count, engine


def main(argv=None):
    args = parse_args(argv)
    if args.arch_table:
        print(arch_table(with_mmengine=bool(args.mmengine), roi=not args.no_roi, device=args.device))
        return
    count, engine = count_config(args.config, args.shape, roi=not args.no_roi, proposals=args.proposals,
                                 detections=args.detections, device=args.device,
                                 with_mmengine=args.mmengine is not False)
    if tuple(args.shape) != count.shape:
        print(f'Input {args.shape[0]}x{args.shape[1]} padded to {count.shape[0]}x{count.shape[1]} '
              '(the data preprocessor\'s pad_size_divisor)')
    print(format_count(count, engine))


if __name__ == '__main__':
    main()
