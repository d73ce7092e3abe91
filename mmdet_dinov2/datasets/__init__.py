"""Datasets: COCO with checks of its annotation file before training."""
from .checked_coco import (CheckedCocoDataset, DatasetCheckError, Problem, check_image,
                           format_problems, load_annotation_file)

__all__ = ['CheckedCocoDataset', 'DatasetCheckError', 'Problem', 'check_image', 'format_problems',
           'load_annotation_file']
