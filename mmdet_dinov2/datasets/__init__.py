"""Datasets: COCO with checks of its annotation file before training."""
from .checked_coco import CheckedCocoDataset, DatasetCheckError
from .coco_checks import (Problem, check_annotations, check_categories, check_image,
                          format_problems)

__all__ = ['CheckedCocoDataset', 'DatasetCheckError', 'Problem', 'check_annotations',
           'check_categories', 'check_image', 'format_problems']
