"""A specialist's losses: adversarial, Zhang et al.'s rebalanced classification, colourfulness.

GAN losses: 'vanilla' (binary cross-entropy on logits, pix2pix) or 'lsgan' (least squares).
A discriminator returns patch logits: one tensor, or (multi-scale) a list with one tensor
per image scale; the losses take the mean over scales, so a loss weight means the same
whichever discriminator is used.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from specialists.metrics import colourfulness
from specialists.output import AbBins
from training.colour_bins import soft_encode

Logits = torch.Tensor | Sequence[torch.Tensor]


def gan_loss(logits: Logits, real: bool, mode: str = "vanilla") -> torch.Tensor:
    """Loss pushing patch ``logits`` towards 'real' (True) or 'fake' (False)."""
    if not isinstance(logits, torch.Tensor):
        return torch.stack([gan_loss(scale, real, mode) for scale in logits]).mean()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"unknown GAN loss {mode!r}: use vanilla or lsgan")


def halves(logits: Logits) -> tuple[Logits, Logits]:
    """Split the logits of a batch made of two stacked halves (fake, then real), per scale."""
    if isinstance(logits, torch.Tensor):
        first, second = logits.chunk(2)
        return first, second
    pairs = [scale.chunk(2) for scale in logits]
    return [a for a, _ in pairs], [b for _, b in pairs]


def judged_beside_real(
    discriminator: nn.Module, l_norm: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
) -> Logits:
    """The discriminator's patch logits for ``fake``, computed in one batch with ``real``.

    A batch-norm discriminator (PatchGAN) normalises whatever batch it is given. Judged
    alone, a batch of fakes is normalised by its own statistics, which removes much of what
    tells it from real photos: the generator then trains against a discriminator that its
    own step never faces (D's loss fell to 0.03 while G's adversarial loss sat at 0.15, both
    sides 'winning'). Beside the real half, as in the discriminator's step, the generator
    is judged by the discriminator it is up against.
    """
    logits = discriminator(torch.cat((l_norm, l_norm)), torch.cat((fake, real)))
    return halves(logits)[0]


def matched_features(
    discriminator: nn.Module, l_norm: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """pix2pixHD feature matching: (the fake's logits per scale, the feature-matching loss).

    The loss is the L1 distance between the discriminator's intermediate activations for the
    fake and for the real ab, averaged over layers and scales; the real side is a fixed
    target (no gradient). Both halves go through in one batch, for the reason
    :func:`judged_beside_real` gives. It needs a discriminator with ``features(l_norm,
    ab_norm)``.
    """
    both = discriminator.features(torch.cat((l_norm, l_norm)), torch.cat((fake, real)))
    fake_features = [[f.chunk(2)[0] for f in scale] for scale in both]
    real_features = [[f.chunk(2)[1].detach() for f in scale] for scale in both]
    per_scale = [
        torch.stack([F.l1_loss(f, r) for f, r in zip(fakes[:-1], reals[:-1])]).mean()
        for fakes, reals in zip(fake_features, real_features)
    ]
    return [fakes[-1] for fakes in fake_features], torch.stack(per_scale).mean()


def rebalanced_cross_entropy(logits: torch.Tensor, ab: torch.Tensor, bins: AbBins) -> torch.Tensor:
    """Zhang et al.'s loss: cross-entropy of the bin ``logits`` (B, Q, H, W) against the soft
    encoding of the true normalised ``ab`` (5 nearest bins), each pixel weighted by the
    rebalancing weight of its true colour's nearest bin; mean over pixels."""
    index, target = soft_encode(ab, bins.centres)
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, index)
    per_pixel = -(target * log_p).sum(dim=1)
    return (bins.weights[index[:, 0]] * per_pixel).mean()


def colourfulness_shortfall(pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> torch.Tensor:
    """Mean over images of relu(C(true) - C(pred)), C the Hasler-Suesstrunk colourfulness
    (0..255 scale): zero once a colouring is at least as colourful as the truth.

    Hasler-Suesstrunk rather than the mean ab chroma: it is the measure every report and the
    issue's target use, and its spread term (std of the opponent channels) rewards several
    hues in a photo, where mean chroma could be met by saturating the one brown guess that
    an L1 model already makes. Only a shortfall is penalised, so a photo the model colours
    as vividly as the truth gets no push towards garish.
    """
    with torch.no_grad():
        target = colourfulness(true_rgb)
    return F.relu(target - colourfulness(pred_rgb, eps=1e-6)).mean()
