"""Train every domain's specialist at once: one ``train_specialist`` process per domain.

    python -m training.train_all --data DIR --out RUNS_DIR [--domains a b c] [--router]
        [any other train_specialist flag: passed to every run unchanged]

Separate processes rather than threads: each run keeps its own torch thread pool, its own
GPU and its own crash, and is exactly the run ``train_specialist`` would make alone, in
RUNS_DIR/<domain>/ (checkpoint, metrics.csv, samples, and train.log: the process's output,
appended to). Running the same command again resumes every run from its checkpoint.

The CPU's cores are split between the processes (``--threads``, unless given); with several
CUDA GPUs each process gets its own, round-robin. One progress bar per run is drawn from the
``progress.json`` each run writes, never from its output. A failed run does not stop the
others; the exit status is then 1 and the failed runs are named with the end of their log.
Ctrl-C (or SIGTERM) asks every run to save a checkpoint and stop.
"""

import argparse
import contextlib
import importlib
import io
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

from common.cli import UsageError, choose_device

SPECIALIST_MODULE = "training.train_specialist"
ROUTER_MODULE = "training.train_router"
ROUTER = "router"  # the router's run folder and progress-bar name
LOG = "train.log"
PROGRESS = "progress.json"  # written by train_specialist, about once a second
POLL_S = 0.5
STOP_WAIT_S = 120.0  # how long a run may take to save its checkpoint after Ctrl-C
TAIL_LINES = 15
PROJECT_ROOT = Path(__file__).resolve().parents[1]


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


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """train_all's own flags, and the rest (for train_specialist, unchanged)."""
    parser = argparse.ArgumentParser(
        prog="python -m training.train_all",
        description="Train one specialist per domain at once, each in its own process.",
        epilog="Any other flag goes to every train_specialist run unchanged "
        "(see python -m training.train_specialist --help).",
        allow_abbrev=False,  # an abbreviation is the specialist's to expand, not ours
    )
    parser.add_argument("--data", required=True, help="data folder: train/<domain>/...")
    parser.add_argument("--out", required=True, help="runs folder: one run folder per domain")
    parser.add_argument("--domains", nargs="+", help="domains to train (default: all)")
    parser.add_argument("--router", action="store_true", help="train the router alongside")
    parser.add_argument(
        "--threads", type=int, help="torch threads per run (default: cores / number of runs)"
    )
    parser.add_argument(
        "--device", help="cpu, cuda or cuda:N (default: cuda when there is a GPU, else cpu)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser.parse_known_args(argv)


def cpu_cores() -> int:
    """Cores this process may use (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """CUDA device ids as CUDA_VISIBLE_DEVICES would name them (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [i.strip() for i in listed.split(",") if i.strip()] if listed else []
    count = torch.cuda.device_count()
    return ids[:count] if ids else [str(i) for i in range(count)]


def choose_domains(data: Path, wanted: list[str] | None) -> list[str]:
    """The data folder's domains, or the wanted ones after checking they exist."""
    from training.data import list_domains  # here: importing train_all stays light (no torch)

    if not data.is_dir():
        raise UsageError(f"{data}: no such data folder")
    found = list_domains(data)
    if not found:
        raise UsageError(
            f"{data}: no domain folders (expected <domain>/ or train/<domain>/); "
            "for a plain folder of photos use python -m training.train_specialist"
        )
    if not wanted:
        return found
    unknown = [d for d in wanted if d not in found]
    if unknown:
        raise UsageError(
            f"unknown domain {', '.join(unknown)} in {data}: it has {', '.join(found)}"
        )
    return list(dict.fromkeys(wanted))


def check_flags(module: str, data: str, flags: list[str]) -> None:
    """Reject flags that ``module`` (train_specialist or train_router) would reject, before
    starting anything."""
    parse_args = importlib.import_module(module).parse_args
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages):
            parse_args(["--data", data, "--out", "-", *flags])
    except SystemExit as exc:
        lines = messages.getvalue().strip().splitlines()
        reason = lines[-1].split("error: ", 1)[-1] if lines else f"exit {exc.code}"
        raise UsageError(f"{module.rsplit('.', 1)[-1]} flags: {reason}") from None


def check_specialist_flags(data: str, forwarded: list[str]) -> None:
    """Reject a flag train_specialist would reject, before starting anything."""
    if any(arg == "--domain" or arg.startswith("--domain=") for arg in forwarded):
        raise UsageError("--domain trains one specialist: use --domains a b c here")
    check_flags(SPECIALIST_MODULE, data, forwarded)


def plan_jobs(
    data: str,
    out: str,
    domains: list[str],
    forwarded: list[str],
    *,
    cores: int,
    gpus: list[str],
    threads: int | None = None,
    device: str | None = None,
    router: bool = False,
    router_args: list[str] | None = None,
) -> list[Job]:
    """One job per domain (and the router, ``router_args`` added to its command): its
    command line, run folder and environment.

    Threads: ``threads`` each, else the cores split evenly (at least one). Device: the one
    asked for; plain ``cuda`` (the default when there is a GPU) with several GPUs gives the
    jobs one GPU each, round-robin, by CUDA_VISIBLE_DEVICES.
    """
    names = [*domains, *([ROUTER] if router else [])]
    per_job = threads if threads is not None else max(1, cores // len(names))
    device = device or ("cuda" if gpus else "cpu")
    jobs = []
    for i, name in enumerate(names):
        env = {"OMP_NUM_THREADS": str(per_job)}
        if device == "cuda" and len(gpus) > 1:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        run_dir = Path(out) / name
        common = ["--out", str(run_dir), "--threads", str(per_job), "--device", device]
        if name == ROUTER and router:
            command = [sys.executable, "-m", ROUTER_MODULE, "--data", data, *common]
            command += router_args or []
        else:
            command = [sys.executable, "-m", SPECIALIST_MODULE, "--data", data]
            command += ["--domain", name, *common, "--no-progress", *forwarded]
        jobs.append(Job(name, command, run_dir, env))
    return jobs


def start(job: Job) -> None:
    """Start the job's process, its output appended to RUN/train.log, in its own session.

    Its own session: a terminal's Ctrl-C reaches train_all alone, which then interrupts each
    run exactly once (a second interrupt could cut a checkpoint write short).
    """
    job.run_dir.mkdir(parents=True, exist_ok=True)
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
    """Run the jobs at once; 0 if all succeed, 1 naming the failures, 130 if interrupted."""

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


def main(argv: list[str] | None = None) -> int:
    args, forwarded = parse_args(argv)
    try:
        domains = choose_domains(Path(args.data), args.domains)
        if args.router and ROUTER in domains:
            raise UsageError(f"a domain named {ROUTER!r} would share the router's run folder")
        if args.threads is not None and args.threads < 1:
            raise UsageError("--threads must be at least 1")
        check_specialist_flags(args.data, forwarded)
        if args.device:
            choose_device(args.device)  # refused here as each trainer would refuse it
        gpus = visible_gpus() if args.device is None or args.device.startswith("cuda") else []
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    jobs = plan_jobs(
        args.data,
        args.out,
        domains,
        forwarded,
        cores=cpu_cores(),
        gpus=gpus,
        threads=args.threads,
        device=args.device,
        router=args.router,
    )
    return run_jobs(jobs, progress=args.progress)


if __name__ == "__main__":
    sys.exit(main())
