"""make_reference_shim.py on a fake checkout laid out like czczup/ViT-Adapter's detection/ folder."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import load_tool

make_shim = load_tool('tools/analysis_tools/make_reference_shim.py').make_shim

FAKE = {  # the import lines the shim rewrites, around stand-ins for the model code
    'detection/mmdet_custom/models/backbones/vit_adapter.py':
        'from mmdet.models.builder import BACKBONES\nfrom timm.models.layers import DropPath\n'
        'from ops.modules import MSDeformAttn\nfrom .adapter_modules import Extractor\n'
        'from .base.vit import TIMMVisionTransformer\n\n\n'
        '@BACKBONES.register_module()\nclass ViTAdapter(TIMMVisionTransformer):\n    pass\n',
    'detection/mmdet_custom/models/backbones/adapter_modules.py':
        'from timm.models.layers import DropPath\n\n\nclass Extractor:\n    pass\n',
    'detection/mmdet_custom/models/backbones/base/vit.py':
        'from mmcv.runner import BaseModule\n'
        'from mmcv_custom import my_load_checkpoint as load_checkpoint\n'
        'from mmdet.utils import get_root_logger\nfrom timm.models.layers import DropPath, Mlp\n\n\n'
        'class TIMMVisionTransformer(BaseModule):\n    pass\n',
    'detection/ops/modules/__init__.py': 'from .ms_deform_attn import MSDeformAttn\n',
    'detection/ops/modules/ms_deform_attn.py':
        'from ..functions import MSDeformAttnFunction\n\n\nclass MSDeformAttn:\n'
        '    def run(self, *args):\n        return MSDeformAttnFunction.apply(*args)\n',
    'detection/ops/functions/ms_deform_attn_func.py':
        'import MultiScaleDeformableAttention as MSDA\nimport torch\n'
        'from torch.cuda.amp import custom_bwd, custom_fwd\n\n\n'
        '@custom_fwd(cast_inputs=torch.float32)\ndef compiled(x):\n    return MSDA.forward(x)\n\n\n'
        'def ms_deform_attn_core_pytorch(value, shapes, locations, weights):\n'
        '    return ("pure core", value, shapes, locations, weights)\n',
}


def _checkout(root: Path, **changes) -> Path:
    for rel, text in {**FAKE, **changes}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_shimmed_copy_imports_and_runs_the_pure_pytorch_core(tmp_path):
    out = tmp_path / 'ref'
    make_shim(_checkout(tmp_path / 'checkout'), out)
    code = ('from origvit.vit_adapter import ViTAdapter\nfrom ops.modules import MSDeformAttn\n'
            'import torch\nassert issubclass(ViTAdapter, torch.nn.Module)\n'
            'print(MSDeformAttn().run("v", "s", "start", "loc", "w", 64))')
    run = subprocess.run([sys.executable, '-c', code], cwd=out, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "('pure core', 'v', 's', 'loc', 'w')"


def test_a_checkout_that_differs_is_refused_naming_file_and_line(tmp_path):
    checkout = _checkout(tmp_path / 'checkout', **{
        'detection/mmdet_custom/models/backbones/base/vit.py': 'from mmengine.model import BaseModule\n'})
    with pytest.raises(ValueError, match=r'base/vit\.py.*from mmcv\.runner import BaseModule'):
        make_shim(checkout, tmp_path / 'ref')
    assert not (tmp_path / 'ref').exists()  # nothing half-written


def test_a_folder_that_is_not_a_checkout_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='vit_adapter.py not found'):
        make_shim(tmp_path, tmp_path / 'ref')
