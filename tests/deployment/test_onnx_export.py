"""ONNX export (tools/deployment): the gathered deformable attention, the numpy pre- and
post-processing against mmdet's own, and the tiny detector exported, run by ONNX Runtime and
compared with mmdet's predictions, detection by detection."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from mmdet_dinov2.models.layers.ms_deform_attn import (
    MSDeformAttn,
    deform_attn_cpu,
    deform_attn_export,
)
from tests.helpers import REPO, load_tool, tiny_config, train

pytest.importorskip('onnxruntime')
pytestmark = pytest.mark.usefixtures('plain_config_text', 'one_thread')
export_onnx = load_tool('tools/deployment/export_onnx.py')
onnx_io = sys.modules['onnx_io']
onnx_model = sys.modules['onnx_model']


def _sampling_inputs(seed=0, shapes=((6, 5), (3, 3), (2, 1))):
    g = torch.Generator().manual_seed(seed)
    B, Q, M, D, L, P = 2, 7, 3, 4, len(shapes), 4
    value = torch.randn(B, sum(h * w for h, w in shapes), M, D, generator=g)
    # locations past both borders too (zero padding)
    locations = torch.rand(B, Q, M, L, P, 2, generator=g) * 1.4 - 0.2
    weights = torch.rand(B, Q, M, L, P, generator=g).softmax(-1)
    return value, list(shapes), locations, weights


def test_export_sampling_equals_mmcv_grid_sample_and_the_cpu_row_sum():
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

    args = _sampling_inputs()
    ours = deform_attn_export(*args)
    torch.testing.assert_close(ours, multi_scale_deformable_attn_pytorch(*args), rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, deform_attn_cpu(*args), rtol=0, atol=1e-6)


def test_tracing_msdeformattn_records_a_gather_and_matmul_with_the_same_output():
    attn = (
        MSDeformAttn(dim=12, num_heads=3, num_levels=2, num_points=2).eval().requires_grad_(False)
    )
    torch.nn.init.normal_(attn.sampling_offsets.weight, std=0.5)  # off the initial ring
    shapes = [(4, 5), (2, 3)]
    query, feat = torch.randn(1, 9, 12), torch.randn(1, 26, 12)
    ref = torch.rand(1, 9, 2, 2)
    with torch.no_grad():
        eager = attn(query, ref, feat, shapes)
        traced = torch.jit.trace(lambda q, r, f: attn(q, r, f, shapes), (query, ref, feat))
    graph = str(traced.graph)
    assert 'aten::matmul' in graph and 'embedding_bag' not in graph and 'grid_sampler' not in graph
    torch.testing.assert_close(traced(query, ref, feat), eager, rtol=0, atol=1e-5)


def test_paste_masks_equals_mmdet_paste_and_threshold():
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    rng = np.random.default_rng(0)
    masks = rng.random((5, 28, 28), dtype=np.float32)
    x0y0 = rng.uniform(-10, 60, (5, 2))
    boxes = np.concatenate([x0y0, x0y0 + rng.uniform(3, 50, (5, 2))], 1).astype(np.float32)
    h, w = 70, 90
    ours = onnx_io.paste_masks(masks, boxes, (h, w))
    for mask, box, pasted in zip(masks, boxes, ours):  # one box at a time: no shared region
        theirs, (ys, xs) = _do_paste_mask(
            torch.from_numpy(mask)[None, None], torch.from_numpy(box)[None], h, w, skip_empty=True
        )
        full = np.zeros((h, w), bool)
        full[ys, xs] = theirs[0].numpy() >= 0.5
        assert (pasted == full).all()
        assert pasted.any()


def test_preprocess_equals_mmdet_resize_and_data_preprocessor():
    from mmdet.datasets.transforms import Resize
    from mmdet.models.data_preprocessors import DetDataPreprocessor

    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    meta = dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        resize_scale=[133, 80],
        input_shape=[96, 160],
    )
    batch, size, factors = onnx_io.preprocess(image, meta)
    resized = Resize(scale=(133, 80), keep_ratio=True)(dict(img=image))
    pre = DetDataPreprocessor(mean=meta['mean'], std=meta['std'], bgr_to_rgb=True)
    theirs = pre(dict(inputs=[torch.from_numpy(resized['img']).permute(2, 0, 1)]))['inputs']
    h, w = theirs.shape[2:]
    assert tuple(size) == resized['img_shape'] == (h, w) == (80, 112)
    assert factors == pytest.approx(resized['scale_factor'])
    np.testing.assert_allclose(batch[:, :, :h, :w], theirs.numpy(), atol=1e-5)
    assert batch.shape == (1, 3, 96, 160) and not batch[:, :, h:].any() and not batch[..., w:].any()


def test_normalising_test_pipeline_gives_the_same_settings_and_input():
    """A config that normalises in its test pipeline (the L config) rather than in its data
    preprocessor: the same metadata, and preprocess equals mmdet's Resize + Normalize + padding."""
    from mmcv.transforms import Normalize
    from mmdet.datasets.transforms import Resize
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmengine.config import Config

    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    cfg = Config(
        dict(
            test_pipeline=[
                dict(type='Resize', scale=(133, 80)),
                dict(type='mmcv.Normalize', mean=mean, std=std, to_rgb=True),
            ]
        )
    )
    pre = DetDataPreprocessor(mean=None, std=None, bgr_to_rgb=False)
    settings = export_onnx.normalisation(cfg, pre)
    assert settings == dict(mean=mean, std=std, bgr_to_rgb=True)
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    batch, size, _ = onnx_io.preprocess(
        image, dict(settings, resize_scale=[133, 80], input_shape=[96, 160])
    )
    resized = Resize(scale=(133, 80), keep_ratio=True)(dict(img=image))
    normed = Normalize(mean=mean, std=std, to_rgb=True)(resized)['img']
    theirs = pre(dict(inputs=[torch.from_numpy(normed).permute(2, 0, 1)]))['inputs']
    h, w = theirs.shape[2:]
    assert tuple(size) == (h, w) == (80, 112)
    np.testing.assert_allclose(batch[:, :, :h, :w], theirs.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match='normalised 2 times'):
        export_onnx.normalisation(cfg, DetDataPreprocessor(mean=mean, std=std))


def test_compare_matches_reordered_detections_and_refuses_other_labels():
    boxes = np.float32([[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 45]])
    scores, labels = np.float32([0.9, 0.5, 0.50001]), np.array([0, 1, 1])
    masks = np.zeros((3, 50, 50), bool)
    theirs = (boxes, scores, labels, masks)
    order = [0, 2, 1]  # the two near-equal scores swapped
    report = export_onnx.compare(theirs, tuple(a[order] for a in theirs))
    assert report['matched'] == 3 and report['min_iou'] == 1.0 and report['mask_agreement'] == 1.0
    other = export_onnx.compare(theirs, (boxes, scores, np.array([0, 2, 1]), masks))
    assert other['matched'] == 2  # the second box's label differs


def test_export_refuses_roi_align_that_onnx_does_not_compute():
    detector = export_onnx.build_detector(str(REPO / 'tests/tools/tiny_config.py'))
    detector.roi_head.mask_roi_extractor.roi_layers[0].aligned = False
    with pytest.raises(ValueError, match='aligned=True'):
        onnx_model.MaskRCNNForExport(detector)


def test_export_options_are_checked():
    with pytest.raises(SystemExit):
        export_onnx.parse_args(['cfg.py', '--out', 'x.onnx', '--opset', '13'])


def _nodes(graph):
    """The nodes of an ONNX graph and of its subgraphs (If and Loop bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in [attr.g] * attr.HasField('g') + list(attr.graphs):
                yield from _nodes(sub)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_data):
    """The tiny config trained for 4 iterations: scores far enough apart for one NMS order. No
    validation and one checkpoint, at the end (speed)."""
    work_dir = tmp_path_factory.mktemp('onnx_train')
    train(
        tiny_config(
            tiny_data,
            work_dir,
            **{
                'train_cfg.max_epochs': 2,
                'default_hooks.checkpoint.interval': 2,
                'val_cfg': None,
                'val_dataloader': None,
                'val_evaluator': None,
            },
        )
    )
    return str(work_dir / 'epoch_2.pth')


@pytest.fixture(scope='module')
def exported(trained, tmp_path_factory):
    """The trained tiny detector and its ONNX file."""
    detector = export_onnx.build_detector(str(REPO / 'tests/tools/tiny_config.py'), trained)
    path = tmp_path_factory.mktemp('onnx') / 'tiny.onnx'
    settings = export_onnx.export(detector, path)
    assert not detector.training  # left as found: the comparisons run it
    assert settings['input_shape'] == [96, 96] and len(settings['classes']) == 4
    return detector, path


@pytest.mark.slow
def test_tiny_detector_on_onnx_runtime_equals_mmdet(exported, tmp_path):
    import onnx
    import onnxruntime as ort

    detector, path = exported
    model = onnx.load(str(path))
    nodes = list(_nodes(model.graph))
    assert {n.domain for n in nodes} <= {'', 'ai.onnx'}  # no custom operator
    ops = {n.op_type for n in nodes}
    assert {'RoiAlign', 'NonMaxSuppression'} <= ops and 'GridSample' not in ops
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    image = np.random.default_rng(1).standard_normal((1, 3, 96, 96), dtype=np.float32)
    size = np.float32([90, 80])  # an image smaller than the input: boxes clipped to it
    theirs = export_onnx.torch_predictions(detector, image, size)
    ours = export_onnx.onnx_predictions(session, image, size)
    report = export_onnx.compare(theirs, ours)
    assert report['torch'] == report['onnx'] == report['matched'] > 0, report
    assert report['min_iou'] >= 0.99 and report['max_score_diff'] <= 1e-3
    assert report['mask_agreement'] >= 0.99
    assert (ours[0][:, 2] <= 80).all() and (ours[0][:, 3] <= 90).all()
    assert export_onnx.backbone_error(detector, image, tmp_path / 'backbone.onnx') <= 1e-4

    # the file alone, in a process that cannot import this package, mmdet or torch
    script = (
        'import sys; sys.modules.update(mmdet_dinov2=None, mmdet=None, torch=None)\n'
        'import numpy as np, onnxruntime as ort\n'
        f's = ort.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])\n'
        'out = s.run(None, {"image": np.zeros((1, 3, 96, 96), np.float32),'
        ' "image_size": np.float32([96, 96])})\n'
        'print(s.get_modelmeta().custom_metadata_map["classes"], out[3].shape[1:])\n'
        # an empty image area: no proposal survives, every output is empty
        'out = s.run(None, {"image": np.zeros((1, 3, 96, 96), np.float32),'
        ' "image_size": np.float32([0, 0])})\n'
        'print([o.shape for o in out])'
    )
    result = subprocess.run(
        [sys.executable, '-c', script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert '"circle"' in result.stdout and '(28, 28)' in result.stdout
    assert '[(0, 4), (0,), (0,), (0, 28, 28)]' in result.stdout


def test_onnx_demo_collects_images_as_image_demo_does(tmp_path):
    """Same folder listing, and the same refusal of two images whose outputs would overwrite
    each other (photo.jpg and photo.png both predict into preds/photo.json)."""
    collect_images = load_tool('demo/onnx_demo.py').collect_images
    image_demo = load_tool('demo/image_demo.py')
    (tmp_path / 'x.png').write_bytes(b'')
    (tmp_path / 'y.jpg').write_bytes(b'')
    (tmp_path / 'notes.txt').write_text('not an image')
    assert (
        collect_images(str(tmp_path))
        == image_demo.collect_inputs(str(tmp_path))
        == [str(tmp_path / 'x.png'), str(tmp_path / 'y.jpg')]
    )
    assert collect_images(str(tmp_path / 'x.png')) == [str(tmp_path / 'x.png')]
    (tmp_path / 'x.jpg').write_bytes(b'')
    with pytest.raises(SystemExit, match='x.jpg and .*x.png have the same name without its suffix'):
        collect_images(str(tmp_path))


@pytest.mark.slow
def test_onnx_demo_writes_the_predictions_of_image_demo(exported, trained, tiny_data, tmp_path):
    """The demo's JSON against mmdet's DetInferencer (demo/image_demo.py) on the same images."""
    import json

    from pycocotools import mask as mask_utils

    _, path = exported
    images = sorted((tiny_data / 'val').glob('*.png'))
    load_tool('demo/onnx_demo.py').main(
        [str(tiny_data / 'val'), str(path), '--out-dir', str(tmp_path / 'onnx')]
    )
    inferencer = load_tool('demo/image_demo.py').build_inferencer(
        str(REPO / 'tests/tools/tiny_config.py'), trained, device='cpu'
    )
    theirs = inferencer([str(p) for p in images], return_datasamples=False)['predictions']
    assert len(theirs) == len(images) == 2

    def arrays(pred):
        masks = np.array([mask_utils.decode(r) for r in pred['masks']])
        return (
            np.array(pred['bboxes'], np.float32).reshape(-1, 4),
            np.array(pred['scores']),
            np.array(pred['labels']),
            masks,
        )

    for image, pred in zip(images, theirs):
        ours = json.loads((tmp_path / 'onnx' / 'preds' / f'{image.stem}.json').read_text())
        assert (tmp_path / 'onnx' / 'vis' / image.name).is_file()
        report = export_onnx.compare(arrays(pred), arrays(ours))
        assert report['torch'] == report['onnx'] == report['matched'] > 0, report
        assert report['mask_agreement'] >= 0.99


def test_coco_eval_scores_ground_truth_as_perfect_and_a_wrong_label_lower(tiny_data, tmp_path):
    import json

    import onnx
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    coco_eval = load_tool('tools/deployment/coco_eval_onnx.py')
    ann_file = str(tiny_data / 'annotations' / 'instances_val.json')
    coco = COCO(ann_file)
    classes = [c['name'] for c in coco.loadCats(sorted(coco.getCatIds()))][::-1]  # any order
    model = onnx.helper.make_model(onnx.helper.make_graph([], 'empty', [], []))
    onnx.helper.set_model_props(
        model, {k: json.dumps(classes if k == 'classes' else 0) for k in onnx_io.META_KEYS}
    )
    onnx.save(model, str(tmp_path / 'meta.onnx'))

    def write_preds(wrong_label=False):
        for image in coco.loadImgs(coco.getImgIds()):
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image['id']))
            rles = [mask_utils.encode(coco.annToMask(a)) for a in anns]
            labels = [classes.index(coco.loadCats(a['category_id'])[0]['name']) for a in anns]
            if wrong_label:
                labels[0] = (labels[0] + 1) % len(classes)
            pred = dict(
                bboxes=[[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)],
                scores=[1.0] * len(anns),
                labels=labels,
                masks=[dict(size=r['size'], counts=r['counts'].decode()) for r in rles],
            )
            name = image['file_name'].rsplit('/', 1)[-1].rsplit('.', 1)[0]
            (tmp_path / 'preds' / f'{name}.json').write_text(json.dumps(pred))

    (tmp_path / 'preds').mkdir()
    write_preds()
    perfect = coco_eval.evaluate(ann_file, tmp_path / 'preds', tmp_path / 'meta.onnx')
    assert perfect == {'bbox_mAP': 1.0, 'segm_mAP': 1.0}
    write_preds(wrong_label=True)
    worse = coco_eval.evaluate(ann_file, tmp_path / 'preds', tmp_path / 'meta.onnx')
    assert worse['bbox_mAP'] < 1.0 and worse['segm_mAP'] < 1.0
