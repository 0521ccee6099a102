"""Find near-identical photos across splits: ``python -m training.evaluate.dedup DATA_DIR``.

A photo in val or test that (nearly) repeats a training photo inflates every evaluation.
Candidates come from the router's kNN index: when DATA_DIR is the data the router was trained
on, its saved index of the training photos is searched directly; other splits (and other data)
are embedded by the router and indexed the same way (PCA + cosine). Each candidate pair is
then confirmed on pixels: the correlation of their 32 x 32 grayscale centre views. Only
confirmed pairs are listed.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from common.cli import run_command
from common.images import ImageReadError
from common.splits import present_splits
from router import Router, RouterError, load_router
from router.evaluate import DEFAULT_WEIGHTS, write_report
from router.index import NeighbourIndex
from router.preprocess import fit_square, load_l_norm
from training.data import find_images

THUMB = 32


@dataclass
class Pair:
    a: str
    b: str
    similarity: float  # cosine in the router's index space
    pixel_correlation: float

    def as_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "similarity": self.similarity,
            "pixel_correlation": self.pixel_correlation,
        }


class _Photos(Dataset):
    """(index, router input or None, thumbnail) per photo; None, None when unreadable."""

    def __init__(self, paths: list[Path], size: int | None) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, torch.Tensor | None]:
        try:
            l_full = load_l_norm(self.paths[i])
        except ImageReadError:
            return i, None, None
        x = fit_square(l_full, self.size)[0] if self.size else torch.zeros(0)
        return i, x, fit_square(l_full, THUMB)[0].flatten()


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


def embed(
    router: Router | None, paths: list[Path], batch_size: int, workers: int, desc: str
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(router embeddings, unit thumbnails, readable mask) for ``paths``.

    Without a router only the thumbnails are made (for photos already in an index).
    """
    emb = np.zeros((len(paths), router.net.embed_dim if router else 0), dtype=np.float32)
    thumbs = np.zeros((len(paths), THUMB * THUMB), dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    photos = _Photos(paths, router.input_size if router else None)
    loader = DataLoader(photos, batch_size=batch_size, num_workers=workers, collate_fn=list)
    for batch in tqdm(loader, desc=desc, unit="batch"):
        good = [(i, x, t) for i, x, t in batch if t is not None]
        for i, _, t in batch:
            if t is None:
                print(f"warning: {paths[i]}: unreadable image, skipped", file=sys.stderr)
        if not good:
            continue
        ids = [i for i, _, _ in good]
        if router:
            emb[ids] = router.scores(torch.stack([x for _, x, _ in good])).embeddings
        thumbs[ids] = torch.stack([t for _, _, t in good]).numpy()
        ok[ids] = True
    return (emb if router else None), _unit(thumbs), ok


def _saved_train_index(router: Router, root: Path, train: list[Path]) -> NeighbourIndex | None:
    """The router's own index, when it holds exactly this folder's training photos."""
    names = {str(p.relative_to(root)) for p in train}
    same_root = Path(router.index.data_root or "/nonexistent").resolve() == root.resolve()
    return router.index if same_root and set(router.index.paths) <= names else None


@dataclass
class Split:
    """One split ready for matching: its index, raw embeddings (None when reused), thumbnails."""

    index: NeighbourIndex
    embeddings: np.ndarray | None
    thumbs: np.ndarray
    names: list[str]


def find_pairs(
    query: Split, base: Split, k: int, min_similarity: float, min_correlation: float
) -> list[Pair]:
    """Pairs (query photo, base photo) close in the base index and confirmed on pixels."""
    same = query is base
    if same:
        sims, ids = base.index.search_self(k + 1)
    elif query.embeddings is not None:
        sims, ids = base.index.search(query.embeddings, k)
    else:
        raise ValueError("a reused index can only be searched by itself")
    pairs = []
    for q, (row_sims, row_ids) in enumerate(zip(sims, ids)):
        for s, j in zip(row_sims, row_ids):
            if j < 0 or s < min_similarity or (same and j <= q):
                continue
            corr = float(query.thumbs[q] @ base.thumbs[j])
            if corr >= min_correlation:
                pairs.append(Pair(query.names[q], base.index.paths[j], float(s), corr))
    return pairs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate.dedup", description=__doc__.split("\n")[0]
    )
    p.add_argument("data", type=Path, help="data folder with train/ val/ test/ splits")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="router folder")
    p.add_argument("--k", type=int, default=5, help="candidates per photo")
    p.add_argument("--min-similarity", type=float, default=0.9, help="cosine in the index space")
    p.add_argument(
        "--min-correlation", type=float, default=0.95, help="pixel correlation, 32x32 grayscale"
    )
    p.add_argument("--within", action="store_true", help="also list pairs inside one split")
    p.add_argument("--json", type=Path, default=None, help="write the pairs as JSON here")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    root: Path = args.data
    if not root.is_dir():
        raise ValueError(f"{root}: no such data folder")
    splits = {s: find_images(root, s) for s in present_splits(root)}
    splits = {s: paths for s, paths in splits.items() if paths}
    if len(splits) < 2 and not args.within:
        raise ValueError(
            f"{root}: need at least two splits (train/val/test) with photos, or --within"
        )
    router = load_router(args.weights)
    saved = _saved_train_index(router, root, splits["train"]) if "train" in splits else None
    prepared: dict[str, Split] = {}
    for split, paths in splits.items():
        reuse = split == "train" and saved is not None
        if reuse:
            print(f"using the router's saved index of {len(saved)} training photos")
            paths = [root / p for p in saved.paths]
        emb, thumbs, ok = embed(
            None if reuse else router, paths, args.batch_size, args.workers, f"reading {split}"
        )
        names = [str(p.relative_to(root)) for p in paths]
        if reuse:
            thumbs[~ok] = 0.0  # an unreadable indexed photo can never be confirmed
            prepared[split] = Split(saved, None, thumbs, names)
            continue
        names = [n for n, good in zip(names, ok) if good]
        labels = np.zeros(len(names), dtype=np.int64)
        index = NeighbourIndex.build(
            emb[ok], names, labels, ["all"], str(root), router.index.stored_dim
        )
        prepared[split] = Split(index, emb[ok], thumbs[ok], names)
    found: dict[str, list[Pair]] = {}
    order = list(prepared)  # train first: it is only ever searched, never the query
    for i, base in enumerate(order):
        for other in order[i + 1 :] + ([base] if args.within else []):
            found[f"{other}~{base}"] = find_pairs(
                prepared[other], prepared[base], args.k, args.min_similarity, args.min_correlation
            )
    return {
        "data": str(root),
        "photos": {s: len(v.names) for s, v in prepared.items()},
        "pairs": {key: [p.as_dict() for p in pairs] for key, pairs in found.items()},
        "settings": {
            "k": args.k,
            "min_similarity": args.min_similarity,
            "min_correlation": args.min_correlation,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return run_command(lambda: report_pairs(args), errors=(ValueError, RouterError))


def report_pairs(args: argparse.Namespace) -> None:
    """Find the pairs, print them and write the JSON."""
    report = run(args)
    print("\nphotos: " + ", ".join(f"{s} {n}" for s, n in report["photos"].items()))
    for key, pairs in report["pairs"].items():
        print(f"\n{key}: {len(pairs)} near-duplicate pair(s)")
        for p in pairs:
            scores = f"similarity {p['similarity']:.4f}, pixels {p['pixel_correlation']:.4f}"
            print(f"  {p['a']}  ~  {p['b']}  ({scores})")
    if args.json is not None:
        write_report(args.json, report)


if __name__ == "__main__":
    sys.exit(main())
