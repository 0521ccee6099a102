"""GAN losses: 'vanilla' (binary cross-entropy on logits, pix2pix) or 'lsgan' (least squares)."""

import torch
import torch.nn.functional as F


def gan_loss(logits: torch.Tensor, real: bool, mode: str = "vanilla") -> torch.Tensor:
    """Loss pushing patch ``logits`` towards 'real' (True) or 'fake' (False)."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"unknown GAN loss {mode!r}: use vanilla or lsgan")
