"""A model as it is served: the same outputs, less work at inference.

One place lists what serving does to a trained network, so the router, the specialists and
the discriminators all get every step: batch norms folded into their convolutions
(``common.fold``), U-Net skip concatenations split into one convolution per part
(``specialists.timm_unet.SplitConv2d``), TensorFlow-"same" convolutions without a padded
copy of their input (``common.same_padding``) and dense convolutions with their activation
in one oneDNN call (``common.conv_act``). Each step leaves models without its layers
unchanged; the result can no longer be trained.

:func:`half_res_top` is apart: serving's opt-in fast mode, which changes the colours a little.
"""

from torch import nn

from common.conv_act import fuse_conv_activations
from common.fold import fold_batchnorm
from common.same_padding import unpad_same_convs

from .timm_unet import TimmUNet, split_concats


def for_inference(model: nn.Module, inplace: bool = False) -> nn.Module:
    """``model`` prepared for serving: a copy, or with ``inplace`` the model itself."""
    served = unpad_same_convs(split_concats(fold_batchnorm(model, inplace=inplace)))
    return fuse_conv_activations(served)


def half_res_top(model: nn.Module) -> bool:
    """Serve ``model`` (in place) in fast mode: its U-Net's top decoder block and head at half
    the input's size (``TimmUNet.half_res_top``), a quarter of their work. Not the same
    colours: smoother ab, slightly paler (README, "Fast mode"). False when ``model`` has no
    such U-Net (then nothing changes)."""
    unets = [m for m in model.modules() if isinstance(m, TimmUNet)]
    for unet in unets:
        unet.half_res_top = True
    return bool(unets)
