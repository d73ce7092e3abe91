"""Convert an official DINOv2 checkpoint (patch 14) for the ViT-Adapter backbone (patch 16).

    python tools/convert_14to16.py pretrained/dinov2_vits14_pretrain.pth
    # -> pretrained/dinov2_vits14_pretrain_14to16.pth

Works for ViT-S/B/L/g and their _reg4 variants (the register tokens are kept; the reg4 configs
carry them). DINOv3 files need no conversion (patch 16 already): the tool says so and names the
config. The file is read with torch's weights-only loader;
``--trust-checkpoint`` lifts that for a file you trust. The output is written atomically.
"""
import argparse
import sys
from pathlib import Path

from mmdet_dinov2.checkpoints import (CheckpointError, convert_dinov2, detect_format,
                                      load_state_dict_file, save_state_dict_file)
from mmdet_dinov2.checkpoints.convert.dinov2 import RESAMPLE_METHODS
from mmdet_dinov2.checkpoints.convert.dinov3 import DINOV3_FORMATS, dinov3_variant
from mmdet_dinov2.checkpoints.load import config_to_use

SUFFIX = '_14to16'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', type=Path, help='official DINOv2 .pth (or .safetensors)')
    parser.add_argument('--out', type=Path, default=None,
                        help=f'output file, or a folder to write <checkpoint name>{SUFFIX}.pth into '
                             '(default: beside the checkpoint)')
    parser.add_argument('--method', choices=RESAMPLE_METHODS, default='bilinear',
                        help='kernel resize: bilinear (as the original ViT-Adapter) or pinv '
                             '(FlexiViT pseudo-inverse)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load with weights_only=False: only for a file you trust')
    return parser.parse_args(argv)


def default_output(checkpoint):
    """``x/name.pth`` -> ``x/name_14to16.pth`` (the original's naming)."""
    return checkpoint.with_name(checkpoint.stem + SUFFIX + checkpoint.suffix)


def main(argv=None):
    args = parse_args(argv)
    out = args.out or default_output(args.checkpoint)
    if out.is_dir():  # as cp does: the default name inside it
        out = out / default_output(args.checkpoint).name
    if out.resolve() == args.checkpoint.resolve():
        sys.exit(f'error: --out {out} is the input file; refusing to overwrite it')
    try:
        state_dict = load_state_dict_file(args.checkpoint, trust=args.trust_checkpoint)
        fmt = detect_format(state_dict)
        if fmt in DINOV3_FORMATS:
            sys.exit(f'error: {args.checkpoint} is a {"timm " if fmt == "dinov3_timm" else "official "}'
                     f'DINOv3 {dinov3_variant(state_dict)} file: its patch is 16 already, nothing to '
                     f'convert; give it to the backbone as it is (init_cfg / pretrained of '
                     f'{config_to_use("dinov3", state_dict["cls_token"].shape[-1])})')
        if fmt != 'dinov2':
            what = ('is already converted' if fmt == 'dinov2_converted'
                    else f'is a {fmt} checkpoint, not an official DINOv2 file')
            sys.exit(f'error: {args.checkpoint} {what}; nothing to convert')
        converted, notes = convert_dinov2(state_dict, patch_size=16, method=args.method)
    except (FileNotFoundError, CheckpointError, ValueError) as err:
        sys.exit(f'error: {err}')
    save_state_dict_file(converted, out)
    print(f'{args.checkpoint} -> {out} ({len(state_dict)} -> {len(converted)} tensors)')
    for note in notes:
        print(f'  {note}')
    dim = converted['patch_embed.proj.weight'].shape[0]
    if 'register_tokens' in converted:
        print(f'  a DINOv2 reg4 file: use {config_to_use("dinov2_reg4", dim)} to carry its register tokens')
    else:
        print(f'  use {config_to_use("dinov2", dim)}')
    return out


if __name__ == '__main__':
    main()
