"""Train and assemble a serving weights folder from a folder of domain folders, in one command.

    python -m training.ship --data photos --out my-weights --keep weights --steps 3000

photos/ holds one folder of colour photos per domain (photos/<domain>/*.jpg, or
photos/train/<domain>/ + photos/val/<domain>/); a new folder such as photos/document/ is a
new domain. In order, each step printing what it does:

1. train: the router on every domain, and a specialist for each domain that has none yet
   (with --keep WEIGHTS, a domain WEIGHTS/specialists already has keeps that specialist;
   --router and --specialist DOMAIN=RUN_DIR use finished runs instead). The runs go to
   --runs, all at once, one process each (training.train_all); rerunning resumes them.
2. the router is copied with float16 weights; each run is exported with float16 weights
   (training.ship.export); kept specialists are copied;
3. each specialist's chroma gain is fitted on held-out photos (training.ship.fit_chroma);
4. the fallback judge is calibrated on the same held-out photos (training.ship.calibrate_judge);
5. the per-photo colour restraint is fitted on every held-out photo (training.ship.fit_restraint:
   a table of neighbours, better with more), when there are enough of them.
Val is never looked at. The result is what python -m serve.colorize --weights OUT loads.

Any flag not listed below goes to every train_specialist run (see its --help); the router's
own flags go in --router-args.
"""

import argparse
import shlex
from pathlib import Path

from common.cli import HelpFormatter, UsageError, plain, run_command
from common.files import atomic_write_bytes
from common.images import ImageReadError
from router import RouterError, load_router
from serve.weights import SPECIALISTS_DIR, WeightsError
from specialists.checkpoint import CheckpointError
from training import train_all
from training.jobs import run_jobs
from training.ship import calibrate_judge, fit_chroma, fit_restraint
from training.ship.export import export_run


def ship_router(source: Path, out: Path) -> None:
    """Copy a router folder to ``out/router`` with its network stored in float16."""
    router = load_router(source)
    router.net.half()
    router.save(out / "router")


def keep_specialist(source: Path, out: Path) -> None:
    """Copy a shipped specialist (and its JSON config) into ``out/specialists``."""
    for path in (source, source.with_suffix(".json")):
        if path.is_file():
            atomic_write_bytes(out / SPECIALISTS_DIR / path.name, path.read_bytes())


def ship(
    data: Path,
    out: Path,
    router: Path,
    runs: dict[str, Path],
    per_domain: int = 200,
    progress: bool = True,
    kept: dict[str, Path] | None = None,
) -> dict:
    """Build ``out`` from finished runs (and ``kept`` specialist files); returns the chroma
    fits and the judge's calibration summary."""
    kept = kept or {}
    if not runs and not kept:
        raise CheckpointError("give at least one --specialist DOMAIN=RUN_DIR")
    known = load_router(router).domains
    unserved = sorted(set(known) - set(runs) - set(kept))
    if unserved:
        raise CheckpointError(
            f"{router}: the router routes to {', '.join(unserved)}, which has no specialist"
        )
    ship_router(router, out)
    for domain, run in runs.items():
        export_run(run, out / SPECIALISTS_DIR / f"{domain}.safetensors", half=True)
    for source in kept.values():
        keep_specialist(source, out)
    chroma = fit_chroma.fit(data, out, per_domain, progress=progress)
    judge = calibrate_judge.calibrate(data, out, per_domain=per_domain, progress=progress)
    try:
        restraint = fit_restraint.fit(data, out, progress=progress)  # all: more neighbours
    except UsageError as exc:  # too few held-out photos: serve without it
        restraint = {"not_fitted": str(exc)}
    return {"chroma": chroma, "judge": judge, "restraint": restraint}


def _domain_run(text: str) -> tuple[str, Path]:
    domain, sep, run = text.partition("=")
    if not sep or not domain or not run:
        raise argparse.ArgumentTypeError(f"{text!r}: expected DOMAIN=RUN_DIR")
    return domain, Path(run)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """ship's own flags, and the rest (for every train_specialist run)."""
    parser = argparse.ArgumentParser(
        prog="python -m training.ship",
        description=plain(__doc__),
        formatter_class=HelpFormatter,
        allow_abbrev=False,  # an abbreviation is train_specialist's to expand, not ours
        epilog="examples:\n"
        "  python -m training.ship --data photos --out my-weights --keep weights --steps 3000\n"
        "  python -m training.ship --data ../shared/data/colorize-v1 --out weights \\\n"
        "      --router runs/router/router --specialist portrait=runs/portrait \\\n"
        "      --specialist landscape=runs/landscape --specialist general=runs/general",
    )
    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        help="folder of domain folders: DIR/<domain>/*.jpg or DIR/train/<domain>/ + "
        "DIR/val/<domain>/ (its held-out photos fit the chroma gains and the judge)",
    )
    parser.add_argument("--out", required=True, type=Path, help="weights folder to write")
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="where the training runs go"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="WEIGHTS",
        help="a weights folder whose specialists are kept for the domains it has (e.g. the "
        "shipped weights); the other domains are trained",
    )
    parser.add_argument(
        "--router",
        type=Path,
        help="a trained router folder (RUN_DIR/router) to use instead of training one",
    )
    parser.add_argument(
        "--specialist",
        action="append",
        type=_domain_run,
        default=[],
        metavar="DOMAIN=RUN_DIR",
        help="a finished train_specialist run to use for DOMAIN (repeatable)",
    )
    parser.add_argument(
        "--router-args",
        metavar="'FLAGS'",
        help="flags for train_router in one quoted string, e.g. --router-args='--epochs 3' "
        "(see python -m training.train_router --help)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads per run (default: cores / number of runs)"
    )
    parser.add_argument(
        "--device", help="cpu, cuda or cuda:N (default: cuda when there is a GPU, else cpu)"
    )
    parser.add_argument(
        "--per-domain",
        type=int,
        default=200,
        help="held-out photos per domain for the chroma gains and the judge",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars"
    )
    return parser.parse_known_args(argv)


def plan(args: argparse.Namespace) -> tuple[list[str], dict[str, Path], dict[str, Path]]:
    """(domains to train, finished runs to export, specialist files to keep) for every domain
    of the data folder."""
    domains = train_all.choose_domains(args.data, None)
    if args.router is not None:
        load_router(args.router)  # a missing or broken router stops us before any training
    given = dict(args.specialist)
    unknown = sorted(set(given) - set(domains))
    if unknown:
        raise UsageError(
            f"--specialist {', '.join(unknown)}: not a domain of {args.data} "
            f"(it has {', '.join(domains)})"
        )
    kept = {}
    if args.keep is not None:
        if not (args.keep / SPECIALISTS_DIR).is_dir():
            raise UsageError(f"--keep {args.keep}: no {SPECIALISTS_DIR}/ folder in it")
        if args.keep.resolve() == args.out.resolve():
            raise UsageError(
                f"--keep {args.keep} is --out: write to a new folder, then replace the old one"
            )
        for domain in domains:
            path = args.keep / SPECIALISTS_DIR / f"{domain}.safetensors"
            if domain not in given and path.is_file():
                kept[domain] = path
    stale = [
        p.stem
        for p in sorted((args.out / SPECIALISTS_DIR).glob("*.safetensors"))
        if p.stem not in domains
    ]
    if stale:
        raise UsageError(
            f"{args.out} holds specialists for {', '.join(stale)}, which {args.data} has no "
            "folder for: choose a new --out"
        )
    train = [d for d in domains if d not in given and d not in kept]
    runs = given | {d: args.runs / d for d in train}
    return train, runs, kept


def main(argv: list[str] | None = None) -> int:
    args, forwarded = parse_args(argv)
    errors = (RouterError, CheckpointError, WeightsError, ImageReadError)
    return run_command(lambda: run(args, forwarded), errors=errors)


def run(args: argparse.Namespace, forwarded: list[str]) -> int:
    """Check every flag and folder, train what is missing, then assemble ``args.out``; the
    exit code (a failed or interrupted training run's own)."""
    try:
        router_args = shlex.split(args.router_args or "")
    except ValueError as exc:  # an unclosed quote
        raise UsageError(f"--router-args {args.router_args!r}: {exc}") from None
    train, runs, kept = plan(args)
    if train:
        train_all.check_specialist_flags(str(args.data), forwarded)
    elif forwarded:
        raise UsageError(f"unrecognized arguments: {' '.join(forwarded)} (no specialist to train)")
    if args.router is None:
        train_all.check_flags(train_all.ROUTER_MODULE, str(args.data), router_args)
    router = args.router or args.runs / train_all.ROUTER / "router"
    for domain, path in kept.items():
        print(f"{domain}: keeping {path}")
    for domain, run in runs.items():
        print(f"{domain}: {'training in' if domain in train else 'using the run'} {run}")
    print(f"router: {'training in ' + str(router.parent) if args.router is None else router}")
    if train or args.router is None:
        cuda = args.device is None or args.device.startswith("cuda")
        gpus = train_all.visible_gpus() if cuda else []
        jobs = train_all.plan_jobs(
            str(args.data),
            str(args.runs),
            train,
            forwarded,
            cores=train_all.cpu_cores(),
            gpus=gpus,
            threads=args.threads,
            device=args.device,
            router=args.router is None,
            router_args=router_args,
        )
        code = run_jobs(jobs, progress=args.progress)
        if code:
            return code
    print(f"assembling {args.out}: export, chroma gains, judge, colour restraint")
    result = ship(args.data, args.out, router, runs, args.per_domain, args.progress, kept)
    for domain, fit in result["chroma"].items():
        print(f"{domain:>10}: chroma gain {fit['gain']:.3f} ({fit['photos']} held-out photos)")
    sel = result["judge"]["selection"]
    print(f"judge calibrated on {sel['photos']} held-out photos")
    restraint = result["restraint"]
    if "not_fitted" in restraint:
        print(f"no per-photo colour restraint: {restraint['not_fitted']}")
    else:
        gain = restraint["figures"]["overall"]
        print(
            f"colour restraint fitted on {restraint['photos']} held-out photos: PSNR over gray "
            f"{gain['full_strength_db']:+.2f} dB at full strength, {gain['restrained_db']:+.2f} "
            "dB restrained (cross-validated)"
        )
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file()) / 2**20
    print(f"wrote {args.out} ({total:.1f} MiB)")
    print(
        f"next: python -m serve.colorize --weights {args.out} PHOTO.jpg (or set "
        f"COLORIZER_WEIGHTS={args.out} for the web page); measure it on photos it was not "
        f"trained on: python -m training.evaluate PHOTOS --weights {args.out}"
    )
    return 0
