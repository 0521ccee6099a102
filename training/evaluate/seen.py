"""Which evaluated photos a specialist learnt from: its figures on them are in-sample.

A specialist's config names the data it was trained on (root and domain) and, for a
fine-tune, what it started from (``--init-from``), whose config names its own data. Every
training photo along that chain is found again (links followed, paths resolved), so an
evaluation can say how many of its photos a model has already seen: colorize-v2's holdout
slice of colorize-v1, for one, is colorize-v1 ``train`` photos, which the specialists first
trained on colorize-v1 learnt from.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from common.links import follow_link_file
from specialists.checkpoint import CheckpointError, read_config
from training.data import find_images, list_domains
from training.evaluate.realism import source_tag
from training.lineage import lineage


def real_path(path: Path) -> Path:
    """The file a photo's bytes come from: link placeholders followed, symlinks resolved."""
    return follow_link_file(path).resolve()


@lru_cache(maxsize=16)
def training_photos(root: str, domain: str | None) -> frozenset[Path]:
    """The photos ``train_specialist --data root --domain domain`` trained on (real paths).
    Kept for the process: ``--unseen`` and the report's section each need every
    specialist's, and walking and resolving a data folder takes seconds."""
    folder = domain if domain in list_domains(root) else None  # None: a plain folder
    return frozenset(real_path(p) for p in find_images(root, "train", folder))


def learnt_from(config: dict) -> tuple[set[Path], list[dict], list[str]]:
    """(real paths of every photo behind a specialist, its runs, what could not be traced)."""
    runs, missing = lineage(config)
    seen: set[Path] = set()
    for run in runs:
        try:
            seen |= training_photos(run["root"], run["domain"])
        except FileNotFoundError:
            missing.append(f"its data {run['root']} (not found from here)")
    return seen, runs, missing


def seen_by(config: dict, photos: Iterable[Path]) -> dict:
    """How many of ``photos`` the specialist (or what it was fine-tuned from) trained on."""
    seen, runs, missing = learnt_from(config)
    hits = [p for p in photos if real_path(p) in seen]
    named = (f"{r['root']} ({r['domain'] or 'all photos'})" for r in runs)
    return {
        "trained_on": list(dict.fromkeys(named)),
        "photos": len(hits),
        "by_source": dict(sorted(Counter(source_tag(p.name) for p in hits).items())),
        "untraced": missing,
    }


def unseen(specialists: dict[str, Path], photos: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """(the photos no specialist, nor what it was fine-tuned from, trained on; what could not
    be traced, so may still have been seen)."""
    seen: set[Path] = set()
    untraced = []
    for domain, path in specialists.items():
        try:
            found, _, missing = learnt_from(read_config(path))
        except CheckpointError as exc:
            found, missing = set(), [str(exc)]
        seen |= found
        untraced += [f"{domain}: {m}" for m in missing]
    return [p for p in photos if real_path(p) not in seen], untraced


def seen_in_training(specialists: dict[str, Path], photos: Sequence[Path]) -> dict:
    """``domain`` -> :func:`seen_by` for each specialist file (``{domain: path}``)."""
    found = {}
    for domain, path in specialists.items():
        try:
            found[domain] = seen_by(read_config(path), photos)
        except CheckpointError as exc:
            found[domain] = {"photos": None, "untraced": [str(exc)]}
    return found
