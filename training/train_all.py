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
Ctrl-C (or SIGTERM) asks every run to save a checkpoint and stop (``training.jobs`` runs
the processes). Exit codes: 0 every run finished, 1 a run failed, 2 a usage error (nothing
was started), 130 interrupted.
"""

import argparse
import contextlib
import importlib
import io
import os
import sys
from pathlib import Path

from common.cli import UsageError, choose_device, run_command
from training.jobs import Job, run_jobs

SPECIALIST_MODULE = "training.train_specialist"
ROUTER_MODULE = "training.train_router"
ROUTER = "router"  # the router's run folder and progress-bar name


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


def main(argv: list[str] | None = None) -> int:
    args, forwarded = parse_args(argv)
    return run_command(lambda: run(args, forwarded))


def run(args: argparse.Namespace, forwarded: list[str]) -> int:
    """Check every flag before any process starts, then run them all; the exit code."""
    domains = choose_domains(Path(args.data), args.domains)
    if args.router and ROUTER in domains:
        raise UsageError(f"a domain named {ROUTER!r} would share the router's run folder")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    check_specialist_flags(args.data, forwarded)
    if args.device:
        choose_device(args.device)  # refused here as each trainer would refuse it
    cuda = args.device is None or args.device.startswith("cuda")
    jobs = plan_jobs(
        args.data,
        args.out,
        domains,
        forwarded,
        cores=cpu_cores(),
        gpus=visible_gpus() if cuda else [],
        threads=args.threads,
        device=args.device,
        router=args.router,
    )
    return run_jobs(jobs, progress=args.progress)


if __name__ == "__main__":
    sys.exit(main())
