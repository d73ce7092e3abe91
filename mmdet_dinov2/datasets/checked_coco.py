"""A CocoDataset that checks its annotation file before training and says what is wrong."""
import os.path as osp

from mmengine.logging import MMLogger
from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import DATASETS

from .coco_checks import (DatasetCheckError, check_annotations, check_categories, check_ids,
                          check_image, for_evaluation, format_problems, load_annotation_file,
                          summarize_problems)

__all__ = ['CheckedCocoDataset', 'DatasetCheckError']


class _BadIds(Exception):
    """The ids of an annotation file cannot be indexed (carries the problems to report)."""

    def __init__(self, problems):
        super().__init__(f'{len(problems)} id problem(s)')
        self.problems = problems


class _CheckedCOCO(COCO):
    """mmdet's COCO API on a checked file: read by :func:`load_annotation_file` (a JSON error names
    the file, line and column), indexed only when :func:`check_ids` finds nothing (pycocotools'
    index silently merges entries that share an id)."""

    def __init__(self, annotation_file):
        super().__init__()
        self.dataset = load_annotation_file(annotation_file)
        problems = check_ids(self.dataset)
        if problems:
            raise _BadIds(problems)
        self.createIndex()
        self.img_ann_map, self.cat_img_map = self.imgToAnns, self.catToImgs  # mmdet's names


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """:class:`~mmdet.datasets.CocoDataset` that checks every image and annotation while loading.

    mmdet skips bad annotations silently (boxes outside the image, degenerate boxes, unknown
    categories), keeps boxes that reach outside the image unclipped, and fails in the middle of
    training on a missing image file or an instance without a mask. Here each problem is found
    before the first iteration (see :mod:`~mmdet_dinov2.datasets.coco_checks`): what can be fixed is
    fixed (boxes clipped to the image), what cannot be learnt from is dropped, both with a warning
    listing the kinds, counts and ids; what cannot be fixed (missing or unreadable images, sizes
    that disagree with the file, unknown category ids, ...) stops the run with every such problem
    listed (file, image id, annotation id, what to do). The file as a whole is checked first: a JSON
    error is reported with its line and column, and ids that are not integers or are used twice
    (which pycocotools would merge silently) stop the run before any image is looked at.
    Segmentations that rasterisation cannot handle safely are refused: polygons with non-finite or
    far-outside coordinates, RLE masks whose runs do not cover their image; and so are images cut
    short (see :func:`~mmdet_dinov2.datasets.coco_checks.check_image`). In a validation/test file,
    polygons and missing masks that COCO evaluation would fail on are refused too (the evaluator
    reads the file itself). An empty dataset is refused.
    Images without annotations stay (trained on as negatives) unless ``filter_cfg`` drops them.

    Args:
        verify_image_size (bool): open each image's header to compare its size (upright, after
            its EXIF orientation) with the json's, and read its last 4 KiB to find files cut
            short; costs a file open per image.
        decode_images (bool): with ``verify_image_size``, decode every image in full
            (milliseconds an image; ``tools/misc/check_dataset.py --decode``).
        max_listed (int): at most this many refused problems in the error message
            (``tools/misc/check_dataset.py`` lists them all).
        *args, **kwargs: as :class:`~mmdet.datasets.CocoDataset`.
    """

    COCOAPI = _CheckedCOCO

    def __init__(self, *args, verify_image_size=True, decode_images=False, max_listed=50,
                 **kwargs):
        self.verify_image_size = verify_image_size
        self.decode_images = decode_images
        self.max_listed = max_listed
        self.problems = []
        super().__init__(*args, **kwargs)

    def load_data_list(self):
        self.problems = []
        self._category_ids = None
        try:
            data_list = super().load_data_list()
        except _BadIds as err:  # nothing indexed, no image looked at
            self.problems, data_list = err.problems, []
        self._report(data_list)
        return data_list

    def parse_data_info(self, raw_data_info):
        if self._category_ids is None:  # the first image: the json's categories are at hand
            self._category_ids = set(self.coco.cats)
            self.problems += check_categories(self.metainfo['classes'],
                                              self.coco.dataset.get('categories', []))
        img_info = dict(raw_data_info['raw_img_info'], id=raw_data_info['raw_img_info']['img_id'])
        img_path = osp.join(self.data_prefix.get('img', ''), str(img_info.get('file_name', '')))
        # remote storage (backend_args): a file check would cost a request per image
        image_problems = (check_image(img_info, img_path, self.verify_image_size,
                                      self.decode_images)
                          if not self.backend_args else [])
        self.problems += image_problems
        if any(p.kind == 'bad image entry' for p in image_problems):  # refused in _report
            return dict(img_path=img_path, img_id=img_info['id'], instances=[])
        anns, ann_problems = check_annotations(img_info, raw_data_info['raw_ann_info'],
                                               self._category_ids, self._needs_masks())
        self.problems += ann_problems
        return super().parse_data_info(dict(raw_data_info, raw_ann_info=anns))

    def filter_data(self):
        data_list = super().filter_data()
        if not data_list:
            raise DatasetCheckError(self._empty_message(len(self.data_list)))
        if len(data_list) < len(self.data_list):
            MMLogger.get_current_instance().info(
                f'{self.ann_file}: filter_cfg={self.filter_cfg} left out '
                f'{len(self.data_list) - len(data_list)} of {len(self.data_list)} images')
        return data_list

    def _report(self, data_list):
        if self.test_mode:
            self.problems = for_evaluation(self.problems)
        refused = [p for p in self.problems if p.action == 'refuse']
        if refused:
            raise DatasetCheckError(
                f'{self.ann_file}: {len(refused)} problem(s) that cannot be fixed automatically '
                f'(images under {self.data_prefix.get("img")}):\n'
                f'{format_problems(refused, self.max_listed)}\n'
                'List every problem with: python tools/misc/check_dataset.py CONFIG')
        logger = MMLogger.get_current_instance()
        if self.problems:
            logger.warning(f'{self.ann_file}: fixed or dropped {len(self.problems)} '
                           f'annotation(s):\n{summarize_problems(self.problems)}')
        negatives = sum(not info['instances'] for info in data_list)
        if negatives and not self.test_mode:
            dropped = self.filter_cfg and self.filter_cfg.get('filter_empty_gt', False)
            logger.info(f'{self.ann_file}: {negatives} image(s) without annotations '
                        + ('dropped (filter_cfg.filter_empty_gt=True)' if dropped
                           else 'kept as negatives'))

    def _empty_message(self, loaded):
        what = f'{self.ann_file} gives no images'
        if loaded:
            what += f' after filtering ({loaded} loaded; filter_cfg={self.filter_cfg})'
        if self.test_mode:
            return (f'{what}: an evaluation on it would be meaningless. Point the val/test '
                    'dataloader at an annotation file with images, or turn validation off '
                    '(val_dataloader=None, val_cfg=None, val_evaluator=None).')
        return f'{what}: nothing to train on. Point train_dataloader at a non-empty file.'

    def _needs_masks(self):
        return any(isinstance(t, LoadAnnotations) and t.with_mask
                   for t in getattr(self.pipeline, 'transforms', []))
