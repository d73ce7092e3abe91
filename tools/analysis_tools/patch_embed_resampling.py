"""How well does a 14x14 patch kernel resized to 16x16 reproduce the original patch embedding?

DINOv2 embeds 14x14 patches; the ViT-Adapter runs it at patch 16. A resized kernel k16 applied
to an image upscaled by 16/14 should give the tokens that the original kernel k14 gives on the
original image. This script measures that, for each way of resizing the kernel, on

* kernels: white noise, and "smooth" ones with a natural 1/f amplitude spectrum;
* images: white noise, and low-pass ones with a 1/f amplitude spectrum (natural-image statistics);

upscaling images bilinearly (``align_corners=False``, the resize detection pipelines use;
``--image-resize bicubic`` to see how much that matters). It prints the relative error
||e16 - e14|| / ||e14|| and the mean per-token cosine similarity.

    python tools/analysis_tools/patch_embed_resampling.py [--dim 384] [--grid 16] [--images 8] [--image-resize bicubic]
"""
import argparse

import torch
import torch.nn.functional as F
from timm.layers import resample_patch_embed

from mmdet_dinov2.checkpoints import resample_patch_embed_kernel

OLD, NEW = 14, 16


def pink_noise(shape, generator):
    """Noise with a 1/f amplitude spectrum over the last two dims, unit std."""
    noise = torch.randn(shape, generator=generator)
    fy = torch.fft.fftfreq(shape[-2]).abs()[:, None]
    fx = torch.fft.rfftfreq(shape[-1])[None, :]
    radius = (fx ** 2 + fy ** 2).sqrt()
    radius[0, 0] = 1.0
    smooth = torch.fft.irfft2(torch.fft.rfft2(noise) / radius, s=shape[-2:])
    smooth = smooth - smooth.mean(dim=(-2, -1), keepdim=True)
    return smooth / smooth.std(dim=(-2, -1), keepdim=True)


def resampled_kernels(kernel):
    """{name: 16x16 kernel} for each way of resizing the 14x14 kernel."""
    bilinear = resample_patch_embed_kernel(kernel, NEW, 'bilinear')
    return {
        'bilinear (original ViT-Adapter, --method bilinear)': bilinear,
        'bilinear x 196/256 (area-normalised; not offered)': bilinear * (OLD / NEW) ** 2,
        'pinv of bilinear resize (--method pinv)': resample_patch_embed_kernel(kernel, NEW, 'pinv'),
        "pinv of bicubic+antialias resize (timm's default)": resample_patch_embed(kernel, [NEW, NEW]),
    }


def compare(kernel16, kernel14, images, mode='bilinear'):
    """Relative error and mean token cosine of k16 on upscaled images against k14 on originals."""
    grid = images.shape[-1] // OLD
    reference = F.conv2d(images, kernel14, stride=OLD)  # (N, D, grid, grid)
    upscaled = F.interpolate(images, size=(grid * NEW, grid * NEW), mode=mode,
                             align_corners=False)
    embedded = F.conv2d(upscaled, kernel16, stride=NEW)  # (N, D, grid, grid)
    rel_error = ((embedded - reference).norm() / reference.norm()).item()
    cosine = F.cosine_similarity(embedded, reference, dim=1).mean().item()
    return rel_error, cosine


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dim', type=int, default=384, help='kernel output channels (ViT-S: 384)')
    parser.add_argument('--grid', type=int, default=16, help='patches per image side')
    parser.add_argument('--images', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--image-resize', choices=('bilinear', 'bicubic'), default='bilinear',
                        help='how images are upscaled (mmcv/cv2 resize: bilinear)')
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(args.seed)
    kernels = {
        'white kernel': torch.randn(args.dim, 3, OLD, OLD, generator=gen),
        '1/f kernel': pink_noise((args.dim, 3, OLD, OLD), gen),
    }
    side = args.grid * OLD
    images = {
        'white image': torch.randn(args.images, 3, side, side, generator=gen),
        '1/f image': pink_noise((args.images, 3, side, side), gen),
    }
    cases = [(k, i) for k in kernels for i in images]
    width = max(len(name) for name in resampled_kernels(kernels['white kernel']))
    header = ' | '.join(f'{k}, {i}' for k, i in cases)
    for metric, column in (('relative error ||e16 - e14|| / ||e14||', 0),
                           ('mean per-token cosine similarity', 1)):
        print(f'\n{metric} (dim {args.dim}, {args.images} images of {side}x{side} -> '
              f'{args.grid * NEW}x{args.grid * NEW} {args.image_resize}, seed {args.seed})')
        print(f'| {"kernel resize":{width}} | {header} |')
        print(f'|{"-" * (width + 2)}|' + '|'.join('-' * (len(f'{k}, {i}') + 2) for k, i in cases)
              + '|')
        rows = {}
        for kernel_name, kernel in kernels.items():
            for method, kernel16 in resampled_kernels(kernel).items():
                for image_name, batch in images.items():
                    result = compare(kernel16, kernel, batch, args.image_resize)
                    rows.setdefault(method, []).append(result[column])
        for method, values in rows.items():
            cells = ' | '.join(f'{v:{len(f"{k}, {i}")}.4f}' for v, (k, i) in zip(values, cases))
            print(f'| {method:{width}} | {cells} |')


if __name__ == '__main__':
    main()
