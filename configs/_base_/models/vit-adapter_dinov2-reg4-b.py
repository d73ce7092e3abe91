# DINOv2 ViT-B/14 with 4 registers (dinov2_vitb14_reg4) in ViT-Adapter-B: the DINOv2-B
# backbone file with the class token and the 4 register tokens carried through the blocks (as
# DINOv2 does; windowed blocks: each window also sees them) and the final norm kept for
# get_intermediate_layers. UNVALIDATED: DINOv2-B's recipe carried over, no COCO run.
# Weights: https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth into
# pretrained/, then `python tools/convert_14to16.py pretrained/dinov2_vitb14_reg4_pretrain.pth`.
_base_ = './vit-adapter_dinov2-b.py'

model = dict(backbone=dict(
    with_cls_token=True, num_register_tokens=4, final_norm=True,
    pretrained='pretrained/dinov2_vitb14_reg4_pretrain_14to16.pth'))
