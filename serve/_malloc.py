"""Give big freed buffers back to the system at once (glibc), so one large scan in a batch
job does not keep the process at its peak for the rest of the folder.

glibc serves allocations above a dynamic threshold with mmap, but raises that threshold
(up to 32 MiB) each time such a buffer is freed, so a 24-megapixel scan's decode, strips
and encode buffers end up on the heap and stay mapped. Fixing the threshold at 4 MiB keeps
photo-sized buffers on mmap (freed means returned) and small tensors on the heap: the
24-megapixel colour scan's peak RSS fell from 1444 to 1205 MB (benchmarks/bench_serve.py).
A no-op where the C library has no ``mallopt`` (macOS, musl).
"""

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
THRESHOLD_BYTES = 4 << 20


def return_big_buffers() -> bool:
    """Set the fixed mmap threshold; True when the C library accepted it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES))
    except (OSError, AttributeError, TypeError):
        return False
