"""sRGB (D65) <-> CIE Lab in torch, batched and device-agnostic.

The one place that owns the colour maths and the model normalisation: models see
L/50 - 1 and predict ab/110 (the pix2pix convention). Matches ``skimage.color``.
"""

import torch

L_SCALE = 50.0
AB_SCALE = 110.0

_XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_EPS = 0.008856
_KAPPA = 7.787


def _apply_matrix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Multiply every pixel's 3-vector (channel dim -3) by ``matrix``."""
    m = matrix.to(device=image.device, dtype=image.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, image)


def _white(image: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_WHITE_D65, device=image.device, dtype=image.dtype).view(3, 1, 1)


def _linear(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (any shape) -> linear light, clamped to [0, 1] first."""
    rgb = rgb.clamp(0.0, 1.0)
    return torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    """CIE Lab's f of XYZ relative to the white point."""
    return torch.where(t > _EPS, t.clamp_min(_EPS) ** (1.0 / 3.0), _KAPPA * t + 16.0 / 116.0)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], shape (..., 3, H, W) -> Lab with L in [0, 100]."""
    xyz = _apply_matrix(_XYZ_FROM_RGB, _linear(rgb)) / _white(rgb)
    fx, fy, fz = _lab_f(xyz).unbind(dim=-3)
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)
    return lab


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab (..., 3, H, W) -> sRGB clipped to [0, 1]."""
    lightness, a, b = lab.unbind(dim=-3)
    fy = (lightness + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp_min(0.0)
    f = torch.stack((fx, fy, fz), dim=-3)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / _KAPPA) * _white(lab)
    linear = _apply_matrix(_RGB_FROM_XYZ, xyz)
    # x ** (1 / 2.4) as exp(log(x) / 2.4): within 4e-7 of it and 3x faster on a CPU, where
    # this power was half of the full-resolution join's time (serve.transfer)
    gamma = linear.clamp_min(0.0031308).log_().mul_(1 / 2.4).exp_()
    rgb = torch.where(linear > 0.0031308, 1.055 * gamma - 0.055, 12.92 * linear)
    return rgb.clamp(0.0, 1.0)


def rgb_to_lightness(rgb: torch.Tensor) -> torch.Tensor:
    """L channel (..., 1, H, W) of an sRGB image (..., 3, H, W) in [0, 1], or of a grey one
    (..., 1, H, W), R = G = B: what a black-and-white photo keeps.

    Only Y is computed, in the order :func:`rgb_to_lab` computes it, so L is the same to the
    bit at a third of the work (a grey image's linear value once, not thrice).
    """
    linear = _linear(rgb)
    red, green, blue = (
        linear.unbind(dim=-3) if linear.shape[-3] == 3 else [linear[..., 0, :, :]] * 3
    )
    weights = _XYZ_FROM_RGB[1].to(device=rgb.device, dtype=rgb.dtype)
    y = (weights[0] * red + weights[1] * green + weights[2] * blue).unsqueeze(-3)
    return 116.0 * _lab_f(y) - 16.0


def normalize_l(lightness: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> model input in [-1, 1]."""
    return lightness / L_SCALE - 1.0


def denormalize_l(l_norm: torch.Tensor) -> torch.Tensor:
    return (l_norm + 1.0) * L_SCALE


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    """ab in about [-110, 110] -> model target in about [-1, 1]."""
    return ab / AB_SCALE


def denormalize_ab(ab_norm: torch.Tensor) -> torch.Tensor:
    return ab_norm * AB_SCALE


def split_lab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB batch -> (normalised L, normalised ab): what a generator sees and must predict."""
    lab = rgb_to_lab(rgb)
    return normalize_l(lab[..., :1, :, :]), normalize_ab(lab[..., 1:, :, :])


def join_lab(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """Normalised L and ab (same size) -> sRGB in [0, 1]."""
    return lab_to_rgb(torch.cat((denormalize_l(l_norm), denormalize_ab(ab_norm)), dim=-3))
