"""Training processes side by side: each started in its own session with its output
appended to RUN/train.log, one progress bar per run drawn from the ``progress.json`` it
writes (never from its output), Ctrl-C or SIGTERM turned into one interrupt per run (each
saves a checkpoint), and the failed runs named with the end of their logs.
``training.train_all`` and ``training.ship`` decide what to run; this runs it.
"""

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

LOG = "train.log"
PROGRESS = "progress.json"  # written by train_specialist, about once a second
POLL_S = 0.5
STOP_WAIT_S = 120.0  # how long a run may take to save its checkpoint after Ctrl-C
TAIL_LINES = 15
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # put on each run's PYTHONPATH


@dataclass
class Job:
    """One training process: its name (domain or router), command, run folder and state."""

    name: str
    command: list[str]
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    started: float = 0.0
    returncode: int | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG

    @property
    def running(self) -> bool:
        return self.process is not None and self.returncode is None


def start(job: Job) -> None:
    """Start the job's process, its output appended to RUN/train.log, in its own session.

    Its own session: a terminal's Ctrl-C reaches train_all alone, which then interrupts each
    run exactly once (a second interrupt could cut a checkpoint write short).
    """
    env = os.environ | job.env | {"PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    with open(job.log_path, "ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"\n=== {stamp} train_all: {shlex.join(job.command)}\n".encode())
        log.flush()
        job.started = time.time()
        job.process = subprocess.Popen(
            job.command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=os.name == "posix",
        )


def read_progress(job: Job) -> dict | None:
    """The run's progress.json if this process wrote it (not a stale one from a past run)."""
    try:
        state = json.loads((job.run_dir / PROGRESS).read_text())
    except (OSError, ValueError):
        return None
    return state if state.get("time", 0) >= job.started else None


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == 0:
        return "done"
    return "interrupted (checkpoint saved)" if code == 130 else f"exit {code}"


class Bars:
    """One tqdm line per job (or, without progress bars, one printed line as each ends)."""

    def __init__(self, jobs: list[Job], enabled: bool) -> None:
        self.enabled = enabled
        self.seen: set[str] = set()
        width = max(len(job.name) for job in jobs)
        self.bars = {
            job.name: tqdm(
                total=None,
                desc=job.name.ljust(width),
                position=i,
                unit="step",
                dynamic_ncols=True,
                disable=not enabled,
            )
            for i, job in enumerate(jobs)
        }

    def update(self, job: Job) -> None:
        bar = self.bars[job.name]
        state = read_progress(job)
        if state:
            if job.name not in self.seen:  # first report: start the clock at the run's step
                self.seen.add(job.name)
                bar.reset(total=state.get("stop") or state.get("total"))
                bar.initial = state.get("step", 0)
            bar.n = state.get("step", 0)
            metrics = state.get("metrics") or {}
            if "loss_l1" in metrics:
                speed = metrics.get("images_per_s", 0.0)
                bar.set_postfix_str(f"l1={metrics['loss_l1']:.4f} {speed:.1f} img/s", False)
        if job.returncode is not None:
            bar.set_postfix_str(describe_exit(job.returncode))
        bar.refresh()

    def finished(self, job: Job) -> None:
        self.update(job)
        if not self.enabled:
            state = read_progress(job) or {}
            status = describe_exit(job.returncode or 0)
            print(f"{job.name}: {status} (step {state.get('step', '?')})", flush=True)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def watch(jobs: list[Job], bars: Bars) -> None:
    """Poll the processes and their progress files until every job has ended."""
    while True:
        for job in jobs:
            if job.running and job.process is not None:
                code = job.process.poll()
                if code is not None:
                    job.returncode = code
                    bars.finished(job)
                    continue
            bars.update(job)
        if not any(job.running for job in jobs):
            return
        time.sleep(POLL_S)


def stop_all(jobs: list[Job], wait_s: float = STOP_WAIT_S) -> None:
    """Interrupt every running job once (they save a checkpoint), then wait; kill stragglers."""
    for job in jobs:
        if job.running and job.process is not None:
            job.process.send_signal(signal.SIGINT)
    deadline = time.time() + wait_s
    try:
        for job in jobs:
            if job.running and job.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    job.process.wait(timeout=max(0.0, deadline - time.time()))
    except KeyboardInterrupt:
        pass  # asked twice: stop waiting
    for job in jobs:
        if job.process is not None:
            if job.process.poll() is None:
                job.process.kill()
            job.returncode = job.process.wait()


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.replace("\r", "\n").rstrip().splitlines()[-lines:])


def run_jobs(jobs: list[Job], progress: bool = True) -> int:
    """Run the jobs at once; 0 if all succeed, 1 naming the failures, 130 if interrupted.

    Every run folder is made before any process starts: one that cannot be made (an
    ``OSError``) stops the command with nothing running.
    """
    for job in jobs:
        job.run_dir.mkdir(parents=True, exist_ok=True)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Handlers rather than what was inherited: a background job starts with SIGINT ignored,
    # and its children would inherit that and could not be interrupted into a checkpoint.
    handlers = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: terminate}
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, h) for s, h in handlers.items()} if in_main_thread else {}
    bars = Bars(jobs, progress)
    try:
        for job in jobs:
            start(job)
        watch(jobs, bars)
    except KeyboardInterrupt:
        stop_all(jobs)
        bars.close()
        print("\ninterrupted:", file=sys.stderr)
        for job in jobs:
            status = "not started" if job.process is None else describe_exit(job.returncode or 0)
            print(f"  {job.name}: {status}", file=sys.stderr)
        print("run the same command to resume", file=sys.stderr)
        return 130
    finally:
        bars.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [job for job in jobs if job.returncode != 0]
    if not failed:
        print(f"all {len(jobs)} runs finished: {', '.join(str(j.run_dir) for j in jobs)}")
        return 0
    for job in failed:
        code = describe_exit(job.returncode if job.returncode is not None else -1)
        print(f"\n--- {job.name} ({code}), end of {job.log_path}:", file=sys.stderr)
        print(log_tail(job.log_path), file=sys.stderr)
    names = ", ".join(job.name for job in failed)
    print(f"error: {len(failed)} of {len(jobs)} runs failed: {names}", file=sys.stderr)
    return 1
