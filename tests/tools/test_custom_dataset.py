"""configs/custom/mask-rcnn_dinov2-adapter-s_fpn_3x_custom.py, as docs/custom_dataset.md uses it:
fine-tuned from a detector with another number of classes (partial_load) on a generated dataset of
three classes (the quickstart has four) whose images have odd sizes and aspect ratios, are
grayscale, RGBA or JPEG, and whose third class never appears in val; data_root given on the
command line. The model is shrunk to the tools tests' tiny one."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image, ImageDraw

from mmdet_dinov2.engine.launch import load_config, move_data_root

ROOT = Path(__file__).resolve().parents[2]
CUSTOM = str(ROOT / 'configs' / 'custom' / 'mask-rcnn_dinov2-adapter-s_fpn_3x_custom.py')
CLASSES = ('balloon', 'kite', 'umbrella')  # the custom config's
CATEGORY_IDS = (1, 5, 9)  # ids need not be contiguous
# (name, width, height, PIL mode, category indices): odd sizes, grayscale, RGBA, JPEG
TRAIN = [('a.png', 97, 61, 'RGB', [0, 1]), ('b.png', 61, 130, 'L', [2]),
         ('c.png', 150, 83, 'RGBA', [0, 2]), ('d.jpg', 120, 120, 'RGB', [1]),
         ('e.png', 77, 99, 'RGB', [2, 1]), ('f.png', 128, 64, 'L', [0])]
VAL = [('g.png', 111, 73, 'RGB', [0, 1]), ('h.png', 66, 101, 'RGBA', [1]),
       ('i.jpg', 90, 140, 'L', [0])]  # no umbrella in val


def _write_split(root, split, images, seed):
    rng = np.random.default_rng(seed)
    (root / split).mkdir(parents=True)
    records, annotations = [], []
    for image_id, (name, width, height, mode, labels) in enumerate(images, start=1):
        img = Image.fromarray(rng.integers(0, 80, (height, width, 3), dtype=np.uint8))
        canvas = ImageDraw.Draw(img)
        for label in labels:
            w, h = (int(v) for v in rng.integers(min(width, height) // 3,
                                                 min(width, height) // 2 + 1, 2))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            canvas.rectangle([x, y, x + w - 1, y + h - 1], fill=(200, 80 * label, 60))
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=CATEGORY_IDS[label],
                bbox=[x, y, w, h], area=float(w * h), iscrowd=0,
                segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
        img.convert(mode).save(root / split / name)
        records.append(dict(id=image_id, file_name=name, width=width, height=height))
    categories = [dict(id=i, name=n) for i, n in zip(CATEGORY_IDS, CLASSES)]
    (root / 'annotations').mkdir(exist_ok=True)
    (root / 'annotations' / f'{split}.json').write_text(json.dumps(
        dict(images=records, annotations=annotations, categories=categories)))


def _tiny_custom_config(path, tiny_config):
    """The custom config with the tiny model (its classes, with_cp) and small image scales."""
    cfg = Config.fromfile(CUSTOM)
    tiny = Config.fromfile(tiny_config)
    heads = cfg.model.roi_head
    assert heads.bbox_head.num_classes == heads.mask_head.num_classes == len(cfg.classes) == 3
    assert cfg.partial_load is True and cfg.load_from.startswith('https://')
    with_cp = cfg.model.backbone.with_cp
    cfg.model = tiny.model
    cfg.model.backbone.with_cp = with_cp
    for head in ('bbox_head', 'mask_head'):
        cfg.model.roi_head[head].num_classes = len(cfg.classes)
    small = [(96, 160), (128, 160)]  # instead of 480..800 x 1333 (the pipelines stay the base's)
    for step in cfg.train_pipeline:  # the RandomChoice of resize policies
        for policy in step.get('transforms', []):
            for t in policy:
                if t['type'] == 'RandomChoiceResize':
                    t['scales'] = small
    cfg.train_dataloader.dataset.pipeline = cfg.train_pipeline
    for t in cfg.test_dataloader.dataset.pipeline:
        if t['type'] == 'Resize':
            t['scale'] = (160, 128)
    cfg.val_dataloader = cfg.test_dataloader
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.update(num_workers=0, persistent_workers=False)
    cfg.merge_from_dict({
        'optim_wrapper.paramwise_cfg.num_layers': 2, 'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 1, 'default_hooks.logger.interval': 1,
        'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=False)]})
    cfg.dump(str(path))
    return path


def _four_class_checkpoint(path, tiny_config):
    """A tiny detector's weights with the quickstart's four classes (untrained is enough)."""
    import mmdet_dinov2  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(tiny_config).model)
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


@pytest.mark.slow
def test_custom_config_fine_tunes_on_another_number_of_classes(tiny_config, tool, tmp_path):
    data = tmp_path / 'data'
    _write_split(data, 'train', TRAIN, seed=0)
    _write_split(data, 'val', VAL, seed=1)
    config = _tiny_custom_config(tmp_path / 'custom_tiny.py', tiny_config)
    coco = _four_class_checkpoint(tmp_path / 'coco_like.pth', tiny_config)
    work_dir = tmp_path / 'work'
    result = tool('train.py', config, '--work-dir', work_dir, '--auto-scale-lr', '--cfg-options',
                  f'data_root={data}', f'load_from={coco}')
    output = result.stdout + result.stderr
    assert f'val_evaluator.ann_file: data/custom/annotations/val.json -> {data}/' in output
    log = next(work_dir.glob('*/*.log')).read_text()
    # the 4-class predictors do not fit the 3-class heads: loaded partially, each named
    assert 'partial_load' in log and 'roi_head.bbox_head.fc_cls.weight' in log
    assert 'LR is set based on batch size of 16 and the current batch size is 2' in (
        output + log)
    metrics = [json.loads(line) for line in next(work_dir.glob('*/vis_data/scalars.json'))
               .read_text().splitlines() if 'coco/bbox_mAP' in line]
    assert metrics and 'coco/segm_mAP' in metrics[-1]
    checkpoint = torch.load(work_dir / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert tuple(checkpoint['meta']['dataset_meta']['classes']) == CLASSES
    assert checkpoint['state_dict']['roi_head.bbox_head.fc_cls.weight'].shape[0] == 4  # 3 + bg

    pkl = tmp_path / 'val.pkl'
    tool('test.py', config, work_dir / 'epoch_1.pth', '--work-dir', tmp_path / 'test',
         '--out', pkl, '--cfg-options', f'data_root={data}')
    predictions = pickle.loads(pkl.read_bytes())
    assert sorted(p['ori_shape'] for p in predictions) == sorted(
        (h, w) for _, w, h, _, _ in VAL)


def test_data_root_option_moves_every_path(tmp_path):
    options = {'data_root': '/data/mine', 'test_evaluator.ann_file': '/elsewhere/test.json'}
    cfg = load_config(CUSTOM, cfg_options=options)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == '/data/mine/'
    assert cfg.val_evaluator.ann_file == '/data/mine/annotations/val.json'
    assert cfg.test_evaluator.ann_file == '/elsewhere/test.json'  # an explicit option wins
    assert cfg.data_root == '/data/mine/'


def test_data_root_option_refused_where_it_cannot_reach(tmp_path):
    loader = dict(dataset=dict(data_root='/somewhere/', ann_file='a.json'))
    no_variable = Config(dict(train_dataloader=loader))
    with pytest.raises(ValueError, match='has no data_root variable.*train_dataloader.dataset.'
                                         'data_root=DIR/'):
        move_data_root(no_variable, '/x')
    unused = Config(dict(data_root='data/coco/', train_dataloader=loader))
    with pytest.raises(ValueError, match=r'no dataloader or evaluator .* uses its data_root'):
        move_data_root(unused, '/x')
    # a folder that only starts like the root is not moved
    similar = Config(dict(data_root='data/coco', val_evaluator=dict(ann_file='data/coco2/a.json'),
                          train_dataloader=dict(dataset=dict(data_root='data/coco'))))
    assert move_data_root(similar, '/x/') == ['train_dataloader.dataset.data_root: data/coco -> /x']
    assert similar.val_evaluator.ann_file == 'data/coco2/a.json'
