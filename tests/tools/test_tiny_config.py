"""The tiny test config's literal class list is the shapes generator's CLASSES (a config cannot import
them); the quickstart config has the same check in tests/quickstart/test_quickstart.py."""
from mmengine.config import Config


def test_tiny_config_has_the_shapes_classes(tiny_config, classes):
    cfg = Config.fromfile(tiny_config)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert tuple(loader.dataset.metainfo['classes']) == classes
    assert cfg.model.roi_head.bbox_head.num_classes == len(classes)
    assert cfg.model.roi_head.mask_head.num_classes == len(classes)
