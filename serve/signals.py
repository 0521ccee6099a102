"""Ctrl-C and SIGTERM during a batch run: every output on disk ends up in the report."""

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Slurm and Kubernetes send on pre-emption), handled like Ctrl-C."""


class _Signals:
    """Ctrl-C and SIGTERM as exceptions, held back while finished photos are being reported.

    They are raised at once while photos are read or coloured; inside :meth:`held` (waiting
    for a batch's writes and writing its report lines) they wait for its end, so every output
    on disk is in the report. ``main`` installs :meth:`handle` for both signals.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.waiting: type[KeyboardInterrupt] | None = None

    def handle(self, signum: int, frame: object) -> None:
        kind = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        if not self.depth:
            raise kind()
        self.waiting = self.waiting or kind

    @contextmanager
    def held(self, then_raise: bool = True) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.waiting is not None:
                kind, self.waiting = self.waiting, None
                if then_raise:
                    raise kind()


SIGNALS = _Signals()
INTERRUPT_EXIT = {KeyboardInterrupt: 130, Terminated: 143}  # 128 + SIGINT, 128 + SIGTERM


def stopped_by(exc: KeyboardInterrupt) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
