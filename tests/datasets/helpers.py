"""What the dataset tests share: a tiny COCO split with one edit, the dataset and the check tool on
it."""
import json

from tests.coco_data import rect_ann, write_split
from tests.helpers import load_tool, tiny_config


def write(root, entries, edit=None):
    """The train split of ``entries`` (val: its first image); ``edit(dataset)`` changes the
    train json's content before it is written back. Returns the train json's path."""
    write_split(root, 'train', entries)
    write_split(root, 'val', entries[:1])
    path = root / 'annotations' / 'instances_train.json'
    if edit is not None:
        dataset = json.loads(path.read_text())
        edit(dataset)
        path.write_text(json.dumps(dataset))
    return path


def build(root):
    """The tiny config's train dataset on ``root``, built as training builds it."""
    from mmdet.registry import DATASETS
    return DATASETS.build(tiny_config(root, root / 'work').train_dataloader.dataset)


def check_tool(root, capsys, *options):
    """``tools/misc/check_dataset.py`` on the train split: (exit status, what it printed)."""
    cfg = tiny_config(root, root / 'work')
    cfg.dump(str(root / 'cfg.py'))
    status = load_tool('tools/misc/check_dataset.py').main(
        [str(root / 'cfg.py'), '--splits', 'train', *options])
    return status, capsys.readouterr().out


def two_images(segmentation=None, **ann):
    """Two 64x64 images with one box annotation each (ids 1 and 2 on images 1 and 2)."""
    first = dict(rect_ann(1, 1, [8, 8, 20, 20]), **ann)
    if segmentation is not None:
        first['segmentation'] = segmentation
    return [dict(name='a.png', size=(64, 64), anns=[first]),
            dict(name='b.png', size=(64, 64), anns=[rect_ann(2, 2, [30, 30, 20, 20])])]

