"""Datasets: COCO with checks of its annotation file before training."""

from .checked_coco import CheckedCocoDataset, DatasetCheckError

__all__ = ['CheckedCocoDataset', 'DatasetCheckError']
