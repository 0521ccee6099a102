"""glibc's mmap threshold, set by what a batch run holds: big scans' buffers go back to the
system at once, small photos' model batches reuse the heap.

glibc serves allocations above a threshold with mmap (freed means returned, but each new one
costs its pages' faults) and smaller ones from the heap (reused, but a freed buffer may keep
the process at its peak). By default the threshold rises (up to 32 MiB) each time such a
buffer is freed, so a 24-megapixel scan's decode, strips and encode buffers end up on the
heap and stay mapped: fixed at 4 MiB, that scan's peak RSS fell from 1444 to 1205 MB. But
4 MiB also sends a batch of 8 small photos' activations (8-17 MiB each) to mmap: on the
634-photo mixed folder that cost 29 s of system time and 70 s against 43 s at 32 MiB
(README, "Two fixes from that breakdown"). So the threshold is 4 MiB while a big scan is in
flight and 32 MiB otherwise. A no-op where the C library has no ``mallopt`` (macOS, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Hashable

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
BIG_SCAN_BYTES = 4 << 20  # while a big scan is in flight: its buffers go back when freed
SMALL_PHOTOS_BYTES = 32 << 20  # glibc's largest: a batch's activations stay on the heap


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return None


def set_mmap_threshold(nbytes: int) -> bool:
    """Fix glibc's mmap threshold at ``nbytes``; True when the C library accepted it."""
    try:
        return bool(_libc().mallopt(M_MMAP_THRESHOLD, nbytes))
    except (AttributeError, TypeError):
        return False


class MmapThreshold:
    """Keeps the threshold low exactly while a big scan is between decoding and written."""

    def __init__(self, big_pixels: int) -> None:
        self._big_pixels = big_pixels
        self._big: set[Hashable] = set()
        self._low: bool | None = None  # None: not set yet
        self._apply()

    def started(self, key: Hashable, pixels: int) -> None:
        """A photo of ``pixels`` (as its header declares) starts decoding."""
        if pixels >= self._big_pixels:
            self._big.add(key)
            self._apply()

    def finished(self, key: Hashable) -> None:
        """The photo is written or has failed: its buffers are gone."""
        if key in self._big:
            self._big.discard(key)
            self._apply()

    def _apply(self) -> None:
        low = bool(self._big)
        if low != self._low:
            self._low = low
            set_mmap_threshold(BIG_SCAN_BYTES if low else SMALL_PHOTOS_BYTES)
