"""tools/analysis_tools/get_flops.py: one attention and one deformable attention cost what the hand
formulas say, on the meta device and on real CPU tensors; the parts add up to the total; the tool runs
on the S config and prints mmengine's smaller count beside its own."""
import pytest
import torch

from tests.helpers import REPO as ROOT
from tests.helpers import TINY_CONFIG, load_tool

get_flops = load_tool('tools/analysis_tools/get_flops.py')

MATMUL, SDPA, DEFORM = get_flops.KINDS
S_CONFIG = str(ROOT / 'configs' / 'vit_adapter' / 'mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py')
DEVICES = ('meta', 'cpu')


@pytest.fixture(scope='module')
def tiny_cfg():
    return get_flops.load_detector_config(TINY_CONFIG)


def macs_of(module, *args, **kwargs):
    with torch.no_grad(), get_flops.MacCounter(module) as counter:
        module(*args, **kwargs)
    return counter.macs()


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('window', [False, True])
def test_one_attention_equals_formula(tiny_cfg, device, window):
    backbone = get_flops.build_detector(tiny_cfg, device).backbone
    block = 0 if window else 1  # the tiny ViT: block 0 in 4x4 windows, block 1 global
    attn = backbone.blocks[block].attn
    assert (attn.window_size == 4) == window
    B, H, W, C, heads = 2, 8, 12, 64, 2  # 8x12 tokens: six whole 4x4 windows
    x = torch.randn(B, H * W, C, device=device)
    macs = macs_of(attn, x, hw=(H, W))
    keys = 16 if window else H * W
    assert macs[SDPA] == get_flops.attention_macs(B, heads, H * W, keys, C // heads)
    assert macs[SDPA] == 2 * B * heads * H * W * keys * (C // heads)  # q k^T, then weights v
    assert macs[MATMUL] == B * H * W * (C * 3 * C + C * C)  # qkv and output projections
    assert DEFORM not in macs


@pytest.mark.parametrize('device', DEVICES)
def test_one_deformable_attention_equals_formula(device):
    dim, heads, levels, points, ratio = 64, 2, 3, 4, 0.5
    with torch.device(device):
        attn = get_flops.MSDeformAttn(dim=dim, num_heads=heads, num_levels=levels, num_points=points,
                                      deform_ratio=ratio)
    shapes = [(8, 8), (4, 4), (2, 2)]
    B, Q, S, value_dim = 2, 10, sum(h * w for h, w in shapes), int(dim * ratio)
    query = torch.randn(B, Q, dim, device=device)
    feat = torch.randn(B, S, dim, device=device)
    ref = torch.rand(B, Q, 1, 2, device=device)
    macs = macs_of(attn, query=query, reference_points=ref, feat=feat, spatial_shapes=shapes)
    # four bilinear corners and the attention-weighted sum, per channel of each sampled point
    assert macs[DEFORM] == B * Q * heads * levels * points * (value_dim // heads) * (4 + 1)
    assert macs[MATMUL] == (B * S * dim * value_dim  # value projection
                            + B * Q * dim * heads * levels * points * 3  # offsets (x, y) and weights
                            + B * Q * value_dim * dim)  # output projection
    assert SDPA not in macs


def test_total_is_sum_of_parts_on_both_devices(tiny_cfg):
    counts = {}
    for device in DEVICES:
        detector = get_flops.build_detector(tiny_cfg, device)
        counts[device] = count = get_flops.count_flops(detector, (96, 128), proposals=50, detections=10)
        assert count.total() == sum(count.part_total(p) for p in get_flops.PARTS)
        assert count.total() == sum(count.total(k) for k in get_flops.KINDS)
        assert sum(count.params.values()) == sum(p.numel() for p in detector.parameters())
        for part in get_flops.PARTS:  # the tiny detector has every part, each doing some work
            assert count.part_total(part) > 0, part
        assert count.total(SDPA) == count.macs['ViT: blocks'][SDPA]  # no other part attends
        assert count.macs['Adapter: injectors'][DEFORM] > 0 and count.macs['Adapter: extractors'][DEFORM] > 0
    meta, cpu = counts['meta'], counts['cpu']
    assert {p: dict(k) for p, k in meta.macs.items()} == {p: dict(k) for p, k in cpu.macs.items()}
    # no RoIs: the RoI heads drop out, nothing else changes
    dense = get_flops.count_flops(get_flops.build_detector(tiny_cfg, 'meta'), (96, 128))
    assert dense.total() == meta.total() - meta.part_total('RoI bbox head') - meta.part_total('RoI mask head')


def test_mmengine_counts_the_same_products_and_misses_attention_and_sampling():
    count, engine = get_flops.count_config(TINY_CONFIG, (96, 96), proposals=20, detections=5,
                                           device='meta', with_mmengine=True)
    # mmengine's linear and conv rules give the same products; it adds norms and interpolation
    # (elementwise, which torch's counter leaves out) and has no rule for SDPA. It traces the
    # model, and traced deformable attention is the ONNX path: the four corners' weights (attention
    # folded in) times the corner rows, one matmul: ours less the attention-weight product
    assert engine.pop('linear') + engine.pop('conv') == count.total(MATMUL)
    assert engine.pop('matmul') * get_flops.SAMPLING_MACS_PER_CHANNEL == count.total(DEFORM) * 4
    assert set(engine) <= {'layer_norm', 'batch_norm', 'upsample_bilinear2d', 'upsample_nearest2d'}, engine
    assert count.total(SDPA) > 0 and count.total(DEFORM) > 0


def test_tool_runs_on_s_config(capsys):
    get_flops.main([S_CONFIG, '--shape', '100', '64', '--no-mmengine'])
    out = capsys.readouterr().out
    assert 'padded to 128x64' in out
    for text in ('ViT: blocks', 'Adapter: extractors', 'RoI mask head', 'FLOPs = 2 x MACs', '**total**'):
        assert text in out, text
    count, _ = get_flops.count_config(S_CONFIG, (100, 64), roi=False)
    assert count.shape == (128, 64) and count.part_total('RoI bbox head') == 0
    assert 40e6 < sum(count.params.values()) < 60e6
