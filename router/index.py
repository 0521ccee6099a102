"""The kNN index over the router's embeddings of the training photos.

One faiss file holds the whole chain: L2-normalise the pooled backbone features, project
them with a PCA fitted on the training photos (1280 -> 128 dimensions keeps the file a few
MB for 11,600 photos), L2-normalise again, then an exact inner-product (cosine) search over
float16 vectors. A JSON file beside it names each vector's photo (path relative to the data
root) and domain. Queries pass raw pooled features; the index does the rest.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from common.files import atomic_write_bytes, atomic_write_text

from .errors import RouterError, RouterNotFoundError

INDEX_FILE = "router.faiss"
META_FILE = "router_index.json"


def _pca(vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(projection rows, mean, share of variance kept) of L2-normalised ``vectors``."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    mean = unit.mean(axis=0)
    _, singular, vt = np.linalg.svd(unit - mean, full_matrices=False)
    kept = float((singular[:dim] ** 2).sum() / max((singular**2).sum(), 1e-12))
    return vt[:dim].astype(np.float32), mean.astype(np.float32), kept


def _chain(projection: np.ndarray, mean: np.ndarray) -> faiss.Index:
    out_dim, in_dim = projection.shape
    pca = faiss.LinearTransform(in_dim, out_dim, True)
    faiss.copy_array_to_vector(projection.ravel(), pca.A)
    faiss.copy_array_to_vector((-projection @ mean).astype(np.float32), pca.b)
    pca.is_trained = True
    flat = faiss.IndexScalarQuantizer(
        out_dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    index = faiss.IndexPreTransform(flat)
    index.prepend_transform(faiss.NormalizationTransform(out_dim, 2.0))
    index.prepend_transform(pca)
    index.prepend_transform(faiss.NormalizationTransform(in_dim, 2.0))
    return index


@dataclass
class NeighbourIndex:
    """Training-photo embeddings with their paths and domains."""

    index: faiss.Index
    paths: list[str]
    labels: np.ndarray  # (N,) int, position in ``domains``
    domains: list[str]
    data_root: str = ""
    variance_kept: float = 1.0

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        paths: list[str],
        labels: np.ndarray,
        domains: list[str],
        data_root: str = "",
        dim: int = 128,
    ) -> "NeighbourIndex":
        """PCA-reduce and index ``embeddings`` (N, D) of the photos at ``paths``."""
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        if len(vectors) != len(paths) or len(paths) != len(labels):
            raise ValueError("embeddings, paths and labels must have the same length")
        dim = max(1, min(dim, vectors.shape[1], len(vectors)))
        projection, mean, kept = _pca(vectors, dim)
        index = _chain(projection, mean)
        index.add(vectors)
        labels = np.asarray(labels, dtype=np.int64)
        return cls(index, list(paths), labels, list(domains), data_root, kept)

    @property
    def dim(self) -> int:
        """Dimension of the embeddings it is queried with."""
        return int(self.index.d)

    @property
    def stored_dim(self) -> int:
        """Dimension of the vectors it stores (after PCA)."""
        return int(faiss.downcast_index(self.index.index).d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities (B, k), best first, and the neighbours' row numbers."""
        k = min(k, len(self))
        return self.index.search(np.ascontiguousarray(embeddings, dtype=np.float32), k)

    def search_self(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every indexed photo searched against all the others (itself included)."""
        inner = faiss.downcast_index(self.index.index)
        stored = inner.reconstruct_n(0, len(self))
        return inner.search(stored, min(k, len(self)))

    def votes(self, ids: np.ndarray) -> np.ndarray:
        """Share of each domain among the neighbours ``ids`` (B, k) -> (B, domains)."""
        counts = np.zeros((len(ids), len(self.domains)), dtype=np.float64)
        for row, neighbours in enumerate(ids):
            np.add.at(counts[row], self.labels[neighbours[neighbours >= 0]], 1.0)
        return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)

    def save(self, folder: str | Path) -> None:
        """Write ``router.faiss`` and ``router_index.json`` into ``folder`` atomically."""
        folder = Path(folder)
        atomic_write_bytes(folder / INDEX_FILE, faiss.serialize_index(self.index).tobytes())
        meta = {
            "data_root": self.data_root,
            "domains": self.domains,
            "paths": self.paths,
            "labels": self.labels.tolist(),
            "variance_kept": self.variance_kept,
        }
        atomic_write_text(folder / META_FILE, json.dumps(meta))

    @classmethod
    def load(cls, folder: str | Path) -> "NeighbourIndex":
        """Read an index written by :meth:`save` (RouterError when missing or broken)."""
        folder = Path(folder)
        index_path, meta_path = folder / INDEX_FILE, folder / META_FILE
        for path in (index_path, meta_path):
            if not path.is_file():
                raise RouterNotFoundError(f"{path}: missing (router kNN index)")
        try:
            index = faiss.deserialize_index(np.frombuffer(index_path.read_bytes(), dtype=np.uint8))
        except (RuntimeError, OSError) as exc:
            raise RouterError(f"{index_path}: not a readable faiss index ({exc})") from exc
        try:
            meta = json.loads(meta_path.read_text())
            paths, labels, domains = meta["paths"], np.asarray(meta["labels"]), meta["domains"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RouterError(f"{meta_path}: not a valid index description ({exc})") from exc
        if len(paths) != index.ntotal or len(labels) != index.ntotal:
            raise RouterError(
                f"{meta_path}: describes {len(paths)} photos but {index_path} holds {index.ntotal}"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= len(domains)):
            raise RouterError(f"{meta_path}: domain labels out of range")
        return cls(
            index,
            list(paths),
            labels.astype(np.int64),
            list(domains),
            meta.get("data_root", ""),
            float(meta.get("variance_kept", 1.0)),
        )
