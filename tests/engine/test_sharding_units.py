"""What FSDP2Strategy and the layer-decay constructor check before any process group exists: the
units a config names, the parameter dtype, and parameters that FSDP1 flattened."""
import pytest
import torch
from torch import nn

from mmdet_dinov2.engine.optimizers import LayerDecayOptimizerConstructor
from mmdet_dinov2.engine.sharding import FSDP2Strategy, shard_units


class Detector(nn.Module):
    """The names the layer rule and the strategy read: two ViT blocks, one interaction."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.patch_embed = nn.Linear(4, 4)
        self.backbone.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
        self.backbone.interactions = nn.ModuleList([nn.Linear(4, 4)])
        self.head = nn.Linear(4, 2)


def test_units_are_the_children_of_the_named_lists():
    units = shard_units(Detector(), ('backbone.blocks', 'backbone.interactions'))
    assert units == ['backbone.blocks.0', 'backbone.blocks.1', 'backbone.interactions.0']


def test_a_name_that_is_no_module_list_is_refused_with_the_lists_there_are():
    with pytest.raises(ValueError, match=r"'backbone.vit.blocks'.*\['backbone.blocks', "
                                         r"'backbone.interactions'\]"):
        shard_units(Detector(), ('backbone.vit.blocks',))
    with pytest.raises(ValueError, match="'backbone.patch_embed', which is not a module list"):
        shard_units(Detector(), ('backbone.patch_embed',))


def test_strategy_refuses_an_unknown_dtype_and_a_string_of_lists(tmp_path):
    with pytest.raises(ValueError, match=r"param_dtype='bfloat16'.*\['bf16', 'fp16', 'fp32'\]"):
        FSDP2Strategy(param_dtype='bfloat16', work_dir=str(tmp_path))
    with pytest.raises(TypeError, match="shard_lists='backbone.blocks' must be a list"):
        FSDP2Strategy(shard_lists='backbone.blocks', work_dir=str(tmp_path))


def test_layer_decay_refuses_parameters_fsdp1_flattened():
    model = Detector()
    for name in ('patch_embed', 'blocks'):
        for param in getattr(model.backbone, name).parameters():
            param._fsdp_flattened = True  # what FSDP1 marks on the tensors it flattens
    constructor = LayerDecayOptimizerConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        dict(num_layers=2, layer_decay_rate=0.9))
    with pytest.raises(ValueError, match=r"6 parameters were flattened by FSDP1.*"
                                         r"backbone\.patch_embed\.weight, .*backbone\.blocks\.1\.bias\."
                                         r".*strategy=dict\(type='FSDP2Strategy'\)"):
        constructor(model)
    model = Detector()  # the same model unflattened builds its groups
    groups = constructor(model).optimizer.param_groups
    assert sorted({round(g['lr'] / 1e-3, 6) for g in groups}) == [0.729, 0.81, 0.9, 1.0]
    assert torch.is_tensor(groups[0]['params'][0])
