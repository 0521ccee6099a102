"""The report: every system as a choice among the scored candidates, summarised by domain,
by source, across domains, for routing and below the threshold, then checked against the
targets."""

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from serve.colorizer import Colorizer
from training.evaluate.realism import frechet_distance
from training.evaluate.scoring import CHROMA, CHROMA_TRUE, GREY, METRICS, TRUTH, Run, Scored
from training.evaluate.targets import PEOPLE_SOURCES, check_targets

SOURCE_SYSTEMS = ("grayscale", "general_only", "fallback")

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
        "restraint": colorizer.restraint is not None,
        "fast": colorizer.fast,
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
                "restraint": p.restraint,
                "psnr": {k: m["psnr"] for k, m in p.metrics.items()},
            }
            for p in scored
        ],
        "unreadable": run.unreadable,
    }
    report["targets"] = check_targets(report, domains, reference)
    return report
