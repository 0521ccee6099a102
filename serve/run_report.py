"""What a batch run tells: one JSON line per input (``--report``) and the closing summary.

The report file is replaced atomically by a new file of our own and appended to line by
line, so it is never written through a link and a kill leaves only whole lines.
"""

from __future__ import annotations

import errno
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from tqdm import tqdm

from common.files import UnsafePathError, open_fresh

from .inputs import Job

if TYPE_CHECKING:
    from .result import ColorizeResult


def os_reason(exc: OSError) -> str:
    """``strerror``, with the file it is about when that is another one (a link on the way)."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if isinstance(exc, UnsafePathError) else reason


def _round(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in values.items()}


def report_line(
    job: Job,
    result: ColorizeResult | None,
    seconds: float,
    error: str | None = None,
    skipped: bool = False,
    size: tuple[int, int] | None = None,
) -> dict:
    """One report record (the schema is in the README)."""
    confidence = result.confidence if result is not None else None
    return {
        "input": str(job.source),
        "output": str(job.output) if (result is not None or skipped) else None,
        "domain": result.domain if result else None,
        "confidence": round(confidence, 4) if confidence is not None else None,
        "probs": _round(result.probs) if result else {},
        "strategy": result.strategy if result else None,
        "scores": _round(result.scores) if result else {},
        "seconds": round(seconds, 4),
        "error": error,
        "skipped": skipped,
        "already_colour": result.already_colour if result else None,
        "strength": result.strength if result else None,
        "restraint": round(result.restraint, 3) if result else None,
        "size": list(size) if size is not None else None,
        "model_size": list(result.model_size) if result else None,
        "notes": result.notes if result else [],
    }  # fmt: skip


class Report:
    """The ``--report`` file, one JSON line per input.

    Opened by atomically replacing the path with a new file of our own (holding the earlier
    run's complete lines with ``--skip-existing``), so it is never written through a link and
    a kill leaves whole lines. A failed write (a full disk) is said once; the run goes on.
    """

    def __init__(self, path: Path, keep: bool = False) -> None:
        self.path = path
        self.error: str | None = None
        initial = b""
        if keep and path.is_file() and not path.is_symlink():
            initial = path.read_bytes()
            initial = initial[: initial.rfind(b"\n") + 1]  # no half line from a full disk
        self.handle: BinaryIO | None = open_fresh(path, initial)

    def write(self, record: dict) -> None:
        if self.handle is None:
            return
        line = (json.dumps(record) + "\n").encode("utf-8")
        try:
            if self.handle.write(line) != len(line):
                raise OSError(errno.ENOSPC, "short write (disk full?)")
        except OSError as exc:
            self.error = f"cannot write ({os_reason(exc)}); it is incomplete from here on"
            tqdm.write(f"colorize: error: report {self.path}: {self.error}", file=sys.stderr)
            self.close()

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            try:
                handle.close()
            except OSError:
                pass


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    fallbacks: int = 0
    already_colour: int = 0
    seconds: float = 0.0
    domains: Counter = field(default_factory=Counter)
    interrupted: KeyboardInterrupt | None = None  # Ctrl-C or SIGTERM stopped the run
    left: int = 0  # inputs not reached because of the interruption

    def text(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        domains = ", ".join(f"{d} {n}" for d, n in sorted(self.domains.items())) or "none"
        left = f"; {self.left} not reached (interrupted)" if self.interrupted else ""
        return (
            f"colourized {self.done} photo(s) in {self.seconds:.1f} s ({rate:.2f} images/s); "
            f"per domain: {domains}; {self.fallbacks} by the judge (router unsure); "
            f"{self.already_colour} already in colour; {self.skipped} skipped (output exists); "
            f"{self.failed} failed{left}"
        )
