"""Calibrated realism scores, comparable across discriminators: the judge of the fallback.

Why calibrate at all: each specialist's PatchGAN was trained against its own generator on
its own domain. The offset and spread of its logits record that duel, not an absolute
realism, so the raw scores of two discriminators cannot be compared.

What this module does (the choice, and why):

- **Platt scaling per discriminator.** A discriminator's score of a colouring is its mean
  patch logit; a logistic fit (two numbers, slope and intercept) on validation photos maps
  it to the probability that the colouring is a real photo's, real colourings against the
  specialists' colourings of the same photos. Probabilities mean the same thing whichever
  discriminator gives them. Platt's smoothed targets and a small ridge keep the fit finite
  when a discriminator separates the two sets perfectly.
- **A panel, not each candidate's own judge.** Every discriminator scores every candidate
  and a candidate's score is the panel's mean probability. Each candidate meets the same
  judges, so they are compared on equal terms, and the photo's true domain's judge always
  has a say. A candidate judged only by its own discriminator would meet the judge least
  able to fault it: a GAN's training drives its discriminator towards chance on exactly
  that generator's output.
- **Mean of probabilities, not of logits**: a discriminator looking at a photo far outside
  its domain can emit wild logits; a probability is bounded, so one confused judge cannot
  outvote the rest.
- **Not one judge trained on all domains**: that is another GAN run on a CPU budget, while
  this reuses the discriminators training already produced and fits in minutes
  (``python -m training.ship.calibrate_judge``). Discriminators do not know which specialist
  made a candidate; they only score tensors.

- **The router's belief still counts.** The pick maximises
  ``log p(real) + router_weight * log p_router(domain)``: below the threshold the router is
  unsure, not clueless, and PatchGANs trained on one domain each are weak judges of another
  domain's photos. ``router_weight`` is fitted with the Platt scalings, on held-out photos
  (the PSNR of the pick); 0 lets the discriminators alone decide.

Without a calibration file the panel falls back to plain ``sigmoid(logit)`` per judge and
says so (``Judge.calibrated`` is False).
"""

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from common.files import atomic_write_json

CALIBRATION_METHOD = "platt-panel"
EPS = 1e-6  # floor of probabilities before their log


@dataclass(frozen=True)
class PlattScaling:
    """p(real) = sigmoid(slope * mean_patch_logit + intercept)."""

    slope: float = 1.0
    intercept: float = 0.0

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(raw * self.slope + self.intercept)


def realism_logits(
    discriminator: nn.Module, l_norm: torch.Tensor, ab_norm: torch.Tensor
) -> torch.Tensor:
    """One raw score per image: the discriminator's mean patch logit, shape (B,).

    A multi-scale discriminator (a list of patch logits, one per scale) gives the mean of
    its scales' means, so every scale counts the same whatever its patch count.
    """
    output = discriminator(l_norm, ab_norm)
    scales = output if isinstance(output, (list, tuple)) else [output]
    return torch.stack([s.flatten(1).mean(dim=1) for s in scales]).mean(dim=0)


def fit_platt(
    real: torch.Tensor, fake: torch.Tensor, ridge: float = 1e-3, iterations: int = 50
) -> PlattScaling:
    """Fit Platt scaling of raw scores: ``real`` ones labelled 1, ``fake`` ones 0.

    The two classes get equal total weight (there are several fakes per real photo), the
    targets are Platt's (N+1)/(N+2) and 1/(N+2), and Newton's method does the fit.
    """
    real, fake = real.double().flatten(), fake.double().flatten()
    if real.numel() == 0 or fake.numel() == 0:
        raise ValueError("Platt scaling needs both real and fake scores")
    x = torch.cat((real, fake))
    target = torch.cat(
        (
            torch.full_like(real, (real.numel() + 1) / (real.numel() + 2)),
            torch.full_like(fake, 1 / (fake.numel() + 2)),
        )
    )
    weight = torch.cat(
        (torch.full_like(real, 0.5 / real.numel()), torch.full_like(fake, 0.5 / fake.numel()))
    )
    centre, spread = float(x.mean()), float(x.std().clamp_min(1e-6))
    z = (x - centre) / spread  # fit on standardised scores: well conditioned
    design = torch.stack((z, torch.ones_like(z)), dim=1)
    theta = torch.zeros(2, dtype=torch.float64)
    penalty = torch.diag(torch.tensor([ridge, 0.0], dtype=torch.float64))
    for _ in range(iterations):
        p = torch.sigmoid(design @ theta)
        grad = design.T @ (weight * (p - target)) + penalty @ theta
        hess = (design * (weight * p * (1 - p)).unsqueeze(1)).T @ design + penalty
        step = torch.linalg.solve(hess + 1e-12 * torch.eye(2, dtype=torch.float64), grad)
        theta -= step
        if float(step.abs().max()) < 1e-10:
            break
    slope = float(theta[0]) / spread
    return PlattScaling(slope=slope, intercept=float(theta[1]) - slope * centre)


def roc_auc(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Probability that a real colouring outscores a fake one (ties count half)."""
    real, fake = real.double().flatten(), fake.double().flatten()
    greater = (real.unsqueeze(1) > fake.unsqueeze(0)).double().mean()
    ties = (real.unsqueeze(1) == fake.unsqueeze(0)).double().mean()
    return float(greater + 0.5 * ties)


class Judge:
    """A panel of discriminators, each behind its own calibration, scoring candidates."""

    def __init__(
        self,
        discriminators: Mapping[str, nn.Module],
        calibration: Mapping[str, PlattScaling] | None = None,
        router_weight: float = 0.0,
    ) -> None:
        if not discriminators:
            raise ValueError("a judge needs at least one discriminator")
        self.discriminators = dict(discriminators)
        missing = [name for name in self.discriminators if name not in (calibration or {})]
        self.calibrated = calibration is not None and not missing
        self.calibration = {
            name: (calibration or {}).get(name, PlattScaling()) for name in self.discriminators
        }
        self.router_weight = float(router_weight)

    def pick(self, realism: torch.Tensor, router_probs: torch.Tensor) -> torch.Tensor:
        """Index of the chosen candidate per photo, from (B, K) realism and router
        probabilities; a NaN realism is a candidate left unscored (see :func:`contenders`),
        and a photo with none scored (none could outvote the router) gets the favourite."""
        scores = pick_scores(realism, router_probs, self.router_weight)
        picks = scores.masked_fill(realism.isnan(), -math.inf).argmax(dim=1)
        return torch.where(realism.isnan().all(dim=1), router_probs.argmax(dim=1), picks)

    @torch.inference_mode()
    def score(self, l_norm: torch.Tensor, candidates: Sequence[torch.Tensor]) -> torch.Tensor:
        """Realism in [0, 1] of each candidate ab for each photo: shape (B, len(candidates)).

        ``l_norm`` is (B, 1, h, w); every candidate is a (B, 2, h, w) colouring of it.
        """
        columns = []
        for ab in candidates:
            votes = [
                self.calibration[name](realism_logits(disc, l_norm, ab))
                for name, disc in self.discriminators.items()
            ]
            columns.append(torch.stack(votes).mean(dim=0))
        return torch.stack(columns, dim=1)


def beliefs(decisions: Sequence[object], names: Sequence[str]) -> torch.Tensor:
    """(B, K) the router's probability of each candidate's domain, from decisions with a
    ``probs`` mapping (a domain the router does not know gets 0)."""
    return torch.tensor([[d.probs.get(name, 0.0) for name in names] for d in decisions])


def pick_scores(realism: torch.Tensor, router_probs: torch.Tensor, weight: float) -> torch.Tensor:
    """``log p(real) + weight * log p_router``, the quantity the judge's pick maximises."""
    return realism.clamp_min(EPS).log() + weight * router_probs.clamp_min(EPS).log()


def contenders(
    favourite_realism: torch.Tensor,
    router_probs: torch.Tensor,
    favourite: torch.Tensor,
    weight: float,
) -> torch.Tensor:
    """(B, K) which candidates could still be picked, once the router's favourite (index per
    photo, (B,)) is scored: realism is at most 1, so a candidate whose router belief trails
    by more than the favourite's realism can make up cannot win, and needs no colouring.

    With the shipped router weight (16) that is almost every other candidate: the judge runs
    the other specialists only where the router's probabilities are within a few percent.
    Ties count as contenders, so the pick is exactly the one scoring every candidate gives.
    """
    belief = weight * router_probs.clamp_min(EPS).log()
    best = favourite_realism.clamp_min(EPS).log() + belief.gather(1, favourite[:, None])[:, 0]
    return belief >= best[:, None]


def fingerprint(path: str | Path) -> str:
    """SHA-256 of a checkpoint file: ties a calibration to the exact weights it was fitted on."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_calibration(
    path: str | Path, calibration: Mapping[str, PlattScaling], info: Mapping[str, object]
) -> None:
    """Write a judge calibration as JSON (atomically): data beside the weights, no code."""
    judges = {name: asdict(scaling) for name, scaling in calibration.items()}
    for name, extra in dict(info.get("judges", {})).items():
        judges.setdefault(name, {}).update(extra)
    payload = {**info, "method": CALIBRATION_METHOD, "judges": judges}
    atomic_write_json(path, payload)


def load_calibration(path: str | Path) -> tuple[dict[str, PlattScaling], dict]:
    """Read a calibration written by :func:`save_calibration`: (scalings, the whole file)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if data.get("method") != CALIBRATION_METHOD:
            raise ValueError(f"method is {data.get('method')!r}, expected {CALIBRATION_METHOD!r}")
        scalings = {
            name: PlattScaling(float(entry["slope"]), float(entry["intercept"]))
            for name, entry in data["judges"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a judge calibration ({exc})") from exc
    return scalings, data
