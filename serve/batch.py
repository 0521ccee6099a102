"""The batch pipeline behind ``python -m serve.colorize``: decode ahead, colour in buckets of
one model-input shape, join and write behind, report in order.

Threads decode photos ahead within a memory budget, the models colour a full bucket in one
pass, and other threads join each photo's colour with its full-resolution lightness and
write it while the models colour the next bucket. On a CPU two model workers colour two
buckets at once, each on half the torch threads (:func:`model_workers`).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from tqdm import tqdm

from common.images import MAX_SIDE, ImageReadError, Photo, read_image, save_image

from ._malloc import MmapThreshold
from .inputs import Job
from .run_report import Report, Summary, os_reason, report_line
from .signals import SIGNALS

if TYPE_CHECKING:  # torch and the models load only once a command needs them
    from .colorizer import Colorizer
    from .result import ColorizeResult, Prediction

BATCH_PIXELS = 4_000_000  # a batch stops growing here: big scans are coloured one at a time
# Photos alive in the pipeline at once (decoding, waiting in a bucket, being joined and
# written), in pixels: a folder of big scans holds about two at a time, as before the
# pipeline; small photos are limited by the number of photos in flight instead.
HELD_PIXELS = 32_000_000
IO_THREADS = 2  # decode ahead / join and encode behind: Pillow, zlib and torch drop the GIL
MODEL_WORKERS = 2  # buckets coloured at once on a CPU (torch drops the GIL in its ops)


def model_workers(device: str, threads: int, workers: int | None = None) -> tuple[int, int]:
    """(model workers, torch threads each) for ``threads`` torch threads on ``device``;
    ``workers`` overrides the default.

    Why two workers on a CPU: most of these models' layers are too small for two threads
    to share well (depthwise convolutions, 8 x 8 maps, element-wise ops, and a wake-up per
    op), so two buckets coloured side by side on one thread each go faster than one on two
    (README, "Two buckets at once"). A GPU keeps one worker: it runs one pass at a time.
    """
    if workers is None:
        workers = min(MODEL_WORKERS, threads) if device == "cpu" else 1
    workers = max(1, workers)
    return workers, max(1, threads // workers)


def _worker_setup(threads: int) -> None:
    """Each model worker's torch settings (per thread: OpenMP's thread count, and the
    flush-to-zero of denormals the Colorizer asks for)."""
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


def _read(job: Job, max_pixels: int) -> tuple[Photo | ImageReadError, float]:
    start = time.perf_counter()
    try:
        photo: Photo | ImageReadError = read_image(job.source, MAX_SIDE, max_pixels)
    except ImageReadError as exc:
        photo = exc
    return photo, time.perf_counter() - start


def _save(
    result: ColorizeResult, path: Path, fmt: str, root: Path | None
) -> tuple[str | None, float]:
    """Write one output (in the writer thread), at 16 bits for a 16-bit photo where the
    format has them; returns (error or None, seconds)."""
    start = time.perf_counter()
    try:
        save_image(result.image, path, fmt, root=root, deep=result.deep)
        error = None
    except OSError as exc:
        error = f"cannot write {path} ({os_reason(exc)})"
    return error, time.perf_counter() - start


def _timed_predict(
    colorizer: Colorizer, photos: list[Photo], domain: str | None
) -> tuple[list[Prediction | str], float]:
    """:func:`_predict` in a model worker, with its seconds per photo."""
    start = time.perf_counter()
    predictions = _predict(colorizer, photos, domain)
    return predictions, (time.perf_counter() - start) / len(photos)


def _predict(
    colorizer: Colorizer, photos: list[Photo], domain: str | None
) -> list[Prediction | str]:
    """The models' part for a batch; if it fails as a whole, retry one by one so one bad photo
    stays alone (its entry is then the reason)."""
    try:
        return list(colorizer.predict(photos, domain))
    except Exception:  # noqa: BLE001 - isolate the photo that breaks the batch
        if len(photos) == 1:
            exc_type, exc, _ = sys.exc_info()
            return [f"colourizing failed ({exc_type.__name__}: {exc})"]
    out: list[Prediction | str] = []
    for photo in photos:
        out += _predict(colorizer, [photo], domain)
    return out


def _finish_and_save(
    colorizer: Colorizer,
    photo: Photo,
    prediction: Prediction,
    strength: float,
    job: Job,
    fmt: str,
    root: Path | None,
) -> tuple[ColorizeResult | None, str | None, float]:
    """Join the colour with the full-resolution photo and write it (in a worker thread):
    (result, None, seconds) or (None, the reason it failed, seconds)."""
    start = time.perf_counter()
    try:
        result = colorizer.finish(photo, prediction, strength)
    except Exception as exc:  # noqa: BLE001 - one photo's failure is reported, the run goes on
        return None, f"colourizing failed ({type(exc).__name__}: {exc})", 0.0
    error, _ = _save(result, job.output, fmt, root)
    return (None if error else result), error, time.perf_counter() - start


def _declared_pixels(path: Path) -> int:
    """The pixels a file's header declares (cheap: nothing is decoded); 0 if unreadable, and
    then ``read_image`` says why."""
    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:  # noqa: BLE001 - any reason is read_image's to report
        return 0


def run(
    colorizer: Colorizer,
    jobs: list[Job],
    report: Report | None,
    *,
    out_dir: Path | None = None,
    domain: str | None = None,
    batch_size: int = 8,
    fmt: str = "png",
    skip_existing: bool = False,
    max_pixels: int = 64_000_000,
    progress: bool = True,
    strength: float = 1.0,
    workers: int | None = None,
) -> Summary:
    """Colour ``jobs`` (already sharded) and write the report; returns the tallies.

    A pipeline keeps the models busy: threads decode photos ahead, photos wait in buckets of
    one model-input shape until a batch is full (or the folder ends, or memory says stop),
    ``workers`` model workers (default: :func:`model_workers` of the torch threads) colour
    one bucket each, and threads join the colour with each full-resolution photo and write
    it while the models colour the next. Report lines follow the order buckets were started
    in, whichever worker finishes first. Outputs are written link-safely below ``out_dir``.
    On Ctrl-C or SIGTERM the outputs being written are finished and reported, and the
    summary says it was interrupted.
    """
    import torch

    from .result import JUDGE

    threads = torch.get_num_threads()
    workers, each = model_workers(colorizer.device.type, threads, workers)

    summary = Summary()
    mmap_threshold = MmapThreshold(big_pixels=BATCH_PIXELS)  # big scans: buffers returned

    def emit(record: dict) -> None:
        if report is not None:
            report.write(record)

    def fail(job: Job, error: str, seconds: float, size: tuple[int, int] | None = None) -> None:
        summary.failed += 1
        mmap_threshold.finished(id(job))
        bar.write(f"error: {job.source}: {error}", file=sys.stderr)
        emit(report_line(job, None, seconds, error=error, size=size))

    todo = deque()
    for job in jobs:
        if skip_existing and job.output.is_file() and not job.output.is_symlink():
            summary.skipped += 1
            emit(report_line(job, None, 0.0, skipped=True))
        else:
            todo.append((job, _declared_pixels(job.source)))
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), initial=summary.skipped, unit="photo", disable=not progress)
    decoding: deque = deque()  # (job, pixels, future of (photo or error, seconds)), in order
    buckets: dict[tuple[int, int], list] = defaultdict(list)  # shape -> [(job, photo, seconds)]
    colouring: deque[tuple[list, Future]] = deque()  # (bucket, future), in starting order
    writing: deque = deque()  # (job, pixels, size, seconds so far, future), in colouring order
    held = 0  # pixels of the photos in flight (decoding, in a bucket, being written)

    def collect(wait: bool) -> None:
        """Report finished writes, oldest first (a reported output is on disk); with ``wait``,
        wait for the oldest first."""
        nonlocal held
        with SIGNALS.held():  # a photo on disk is in the report before a signal stops the run
            while writing and (wait or writing[0][-1].done()):
                job, pixels, size, seconds, future = writing.popleft()
                result, error, finish_seconds = future.result()
                held -= pixels
                if error is not None:
                    fail(job, error, seconds + finish_seconds, size)
                else:
                    mmap_threshold.finished(id(job))
                    summary.done += 1
                    summary.domains[result.domain] += 1
                    summary.fallbacks += result.strategy == JUDGE
                    summary.already_colour += result.already_colour
                    emit(report_line(job, result, seconds + finish_seconds, size=size))
                bar.update()
                wait = False

    def colour(shape: tuple[int, int]) -> None:
        """Give one bucket to a model worker (once one is free)."""
        while len(colouring) >= workers:
            deliver(wait=True)
        batch = buckets.pop(shape)
        photos = [photo for _, photo, _ in batch]
        colouring.append((batch, models.submit(_timed_predict, colorizer, photos, domain)))
        deliver(wait=False)

    def deliver(wait: bool) -> None:
        """Hand coloured buckets to the finishing threads, oldest first; with ``wait``, wait
        for the oldest first."""
        while colouring and (wait or colouring[0][1].done()):
            batch, future = colouring.popleft()
            hand_over(batch, *future.result())
            wait = False

    def hand_over(batch: list, predictions: list, share: float) -> None:
        """Send a coloured bucket's photos to be joined and written (failures reported)."""
        nonlocal held
        for (job, photo, seconds), prediction in zip(batch, predictions):
            pixels = photo.size[0] * photo.size[1]
            if isinstance(prediction, str):
                held -= pixels
                fail(job, prediction, seconds + share, photo.size)
                bar.update()
                continue
            args = (colorizer, photo, prediction, strength, job, fmt, out_dir)
            with SIGNALS.held():  # a photo handed to a writer is always collected
                future = finisher.submit(_finish_and_save, *args)
                writing.append((job, pixels, photo.size, seconds + share, future))
        while len(writing) > 2 * batch_size:  # the writers are behind: wait for them
            collect(wait=True)
        collect(wait=False)

    def room(pixels: int) -> bool:
        """Whether a photo of ``pixels`` may start decoding (one always may, however big)."""
        return not held or held + pixels <= HELD_PIXELS

    def fullest() -> tuple[int, int]:
        return max(buckets, key=lambda shape: len(buckets[shape]))

    with (
        bar,
        ThreadPoolExecutor(IO_THREADS, thread_name_prefix="decode") as decoder,
        ThreadPoolExecutor(IO_THREADS, thread_name_prefix="finish") as finisher,
        ThreadPoolExecutor(
            workers, thread_name_prefix="models", initializer=_worker_setup, initargs=(each,)
        ) as models,
    ):
        try:
            while todo or decoding or buckets or colouring:
                deliver(wait=False)
                # decode ahead: a batch's worth in flight, within the memory budget
                while todo and len(decoding) < batch_size and room(todo[0][1]):
                    job, pixels = todo.popleft()
                    held += pixels
                    mmap_threshold.started(id(job), pixels)
                    decoding.append((job, pixels, decoder.submit(_read, job, max_pixels)))
                if decoding:
                    job, pixels, future = decoding.popleft()
                    photo, seconds = future.result()
                    if isinstance(photo, ImageReadError):
                        held -= pixels
                        fail(job, photo.reason, seconds)
                        bar.update()
                        continue
                    held += photo.size[0] * photo.size[1] - pixels  # what it really holds
                    shape = colorizer.input_shape(photo)
                    buckets[shape].append((job, photo, seconds))
                    area = sum(p.size[0] * p.size[1] for _, p, _ in buckets[shape])
                    if len(buckets[shape]) >= batch_size or area >= BATCH_PIXELS:
                        colour(shape)
                elif buckets:  # nothing more to decode now (memory) or at all: colour the fullest
                    colour(fullest())
                elif colouring:  # the budget is spent on photos in the models: wait for them
                    deliver(wait=True)
                else:  # the budget is spent on photos being written: wait for the oldest
                    collect(wait=True)
            while writing:
                collect(wait=True)
        except KeyboardInterrupt as exc:  # Terminated (SIGTERM) included
            summary.interrupted = exc
            for _, future in colouring:  # buckets not started are left for a rerun
                future.cancel()
            with SIGNALS.held(then_raise=False):  # a second signal does not cut this short
                while writing:  # what the threads have in hand is finished and reported
                    collect(wait=True)
        finally:
            torch.set_num_threads(threads)  # as it was, for whatever runs next in this process
    summary.seconds = time.perf_counter() - start
    summary.left = len(jobs) - summary.done - summary.failed - summary.skipped
    return summary
