"""The report for people: the markdown tables and the grid of sample colourings."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from training.evaluate.quality import markdown_table, save_comparison_grid
from training.evaluate.report import SOURCE_SYSTEMS
from training.evaluate.scoring import GREY, Run, as_tensor
from training.evaluate.targets import PEOPLE_SOURCES

GRID_CELL = 160  # px: each grid image is letterboxed into a square of this side
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
        f"{report['threshold']:.4f}{'; fast mode' if report.get('fast') else ''}. "
        "Routed = `fallback`, the served system; "
        + (
            "every specialist's colours scaled by the photo's restraint, as served."
            if report.get("restraint")
            else "no per-photo restraint (full strength)."
        )
        + (" Only photos no specialist trained on (`--unseen`)." if report.get("unseen") else ""),
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
    lines += _seen_md(report.get("seen_in_training", {}), report["photos"])
    notes = list(report.get("notes", []))
    notes += [f"unreadable: {u['path']}: {u['reason']}" for u in report["unreadable"]]
    if report.get("skipped"):
        notes.append(f"{len(report['skipped'])} photos skipped: not in a router domain's folder")
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines)


def _seen_md(seen: dict, photos: int) -> list[str]:
    """Which specialists learnt from some of these photos: their figures there are in-sample."""
    if not seen:
        return []
    lines = ["## Photos the specialists learnt from", ""]
    for domain, found in seen.items():
        untraced = "; not traced: " + "; ".join(found["untraced"]) if found["untraced"] else ""
        if found["photos"] is None:
            lines.append(f"- {domain}: unknown{untraced}")
        elif found["photos"] == 0:
            lines.append(f"- {domain}: none of these {photos} photos{untraced}")
        else:
            sources = ", ".join(f"{k} {v}" for k, v in found["by_source"].items())
            lines.append(
                f"- {domain}: **{found['photos']} of these {photos} photos** ({sources}) were "
                f"training photos of it or of what it was fine-tuned from (trained on "
                f"{', '.join(found['trained_on'])}): its figures on them are in-sample{untraced}"
            )
    return [*lines, ""]


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
