"""A model as it is served: the same outputs, less work at inference.

One place lists what serving does to a trained network, so the router, the specialists and
the discriminators all get every step: batch norms folded into their convolutions
(``common.fold``), U-Net skip concatenations split into one convolution per part
(``specialists.timm_unet.SplitConv2d``), TensorFlow-"same" convolutions without a padded
copy of their input (``common.same_padding``) and dense convolutions with their activation
in one oneDNN call (``common.conv_act``). Each step leaves models without its layers
unchanged; the result can no longer be trained.
"""

from torch import nn

from common.conv_act import fuse_conv_activations
from common.fold import fold_batchnorm
from common.same_padding import unpad_same_convs

from .timm_unet import split_concats


def for_inference(model: nn.Module, inplace: bool = False) -> nn.Module:
    """``model`` prepared for serving: a copy, or with ``inplace`` the model itself."""
    served = unpad_same_convs(split_concats(fold_batchnorm(model, inplace=inplace)))
    return fuse_conv_activations(served)
