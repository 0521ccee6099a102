"""The photos to evaluate: labelled items from the data folder, the per-domain limit, the
grid sample, decoding, and grouping by model-input shape."""

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.cli import UsageError
from common.images import ImageReadError, Photo, read_image
from router.evaluate import collect, relative_name
from serve.colorizer import Colorizer
from serve.transfer import model_shape
from training.data import evenly_spaced


@dataclass(frozen=True)
class Item:
    """A photo to evaluate and its true domain (its folder's name)."""

    path: Path
    domain: str


def find_items(root: Path, split: str | None) -> tuple[list[Item], str | None]:
    """Photos in ``<domain>/`` (or ``<split>/<domain>/``) folders, sorted, and the split used.

    Uses the router evaluation's folder logic; ``val`` is the default split when present.
    """
    if split is None and (root / "val").is_dir():
        split = "val"
    collection = collect(root, [split] if split else None)
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


def decode(
    items: Sequence[Item], root: Path, unreadable: list[dict[str, str]]
) -> list[tuple[Item, Photo]]:
    """Decode a chunk of photos; unreadable ones are recorded in ``unreadable`` and skipped."""
    decoded = []
    for item in items:
        try:
            decoded.append((item, read_image(item.path)))
        except ImageReadError as exc:
            unreadable.append({"path": relative_name(item.path, root), "reason": exc.reason})
    return decoded


def by_shape(
    decoded: Sequence[tuple[Item, Photo]], colorizer: Colorizer
) -> Iterator[list[tuple[Item, Photo]]]:
    """Groups of photos with the same model-input shape (they share forward passes)."""
    groups: dict[tuple[int, int], list[tuple[Item, Photo]]] = defaultdict(list)
    for item, photo in decoded:
        groups[model_shape(*photo.size, colorizer.size, colorizer.stride)].append((item, photo))
    yield from groups.values()
