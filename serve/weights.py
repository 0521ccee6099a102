"""Locating and checking a weights folder, before any model is built.

A weights folder (the repo's ``weights/`` by default, or ``$COLORIZER_WEIGHTS``) holds::

    router/                        the router (router.load_router reads it)
    specialists/<domain>.safetensors   generator + discriminator, config embedded
    judge.json                     the fallback judge's calibration (optional: see
                                   discriminators.scoring; without it raw scores are used)

Anything missing or broken ends in one :class:`WeightsError` that says what is wrong and
how to train the missing pieces or where to point ``--weights``.
"""

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "COLORIZER_WEIGHTS"
ROUTER_DIR = "router"
SPECIALISTS_DIR = "specialists"
JUDGE_FILE = "judge.json"
ROLES = ("generator", "discriminator")

HOW_TO_TRAIN = """\
Train the weights (see README). For each domain (portrait, landscape, general):
  python -m training.train_specialist --data DATA --domain portrait --out runs/portrait
  python -m training.ship.export runs/portrait --out {root}/specialists/portrait.safetensors
then the router and the fallback judge's calibration:
  python -m training.train_router --data DATA --out runs/router
  cp -r runs/router/router {root}/router
  python -m training.ship.calibrate_judge --data DATA --weights {root}
(python -m training.ship --data DATA --out {root} does every step), or point --weights
(or ${env}) at a folder that already has them."""


class WeightsError(RuntimeError):
    """A weights folder that is missing or incomplete; the message says how to fix it."""


@dataclass(frozen=True)
class WeightsFolder:
    """The files of a checked weights folder."""

    root: Path
    router: Path
    specialists: dict[str, Path]  # domain -> checkpoint
    sizes: dict[str, int]  # domain -> training resolution
    judge: Path | None

    @property
    def domains(self) -> list[str]:
        return sorted(self.specialists)


def default_weights_dir() -> Path:
    """``$COLORIZER_WEIGHTS`` if set, else the shipped ``weights`` package folder (the repo's
    ``weights/``, installed beside ``serve`` by ``pip install .``)."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(__file__).resolve().parents[1] / "weights"


def domain_names(folder: str | Path | None = None) -> list[str]:
    """The specialists a weights folder holds, from file names alone (for ``--help``: no
    torch, no checkpoint is opened); [] when there are none."""
    root = Path(folder) if folder is not None else default_weights_dir()
    return sorted(path.stem for path in (root / SPECIALISTS_DIR).glob("*.safetensors"))


def _problem(root: Path, what: str) -> WeightsError:
    return WeightsError(f"{root}: {what}\n" + HOW_TO_TRAIN.format(root=root, env=ENV_VAR))


def locate_weights(folder: str | Path | None = None) -> WeightsFolder:
    """Check ``folder`` (default: :func:`default_weights_dir`) and list its files."""
    from specialists.checkpoint import CheckpointError, read_config  # torch: only when used

    root = Path(folder) if folder is not None else default_weights_dir()
    if not root.is_dir():
        raise _problem(root, "no such weights folder")
    router = root / ROUTER_DIR
    files = sorted((root / SPECIALISTS_DIR).glob("*.safetensors"))
    missing = []
    if not router.is_dir():
        missing.append(f"{ROUTER_DIR}/")
    if not files:
        missing.append(f"{SPECIALISTS_DIR}/*.safetensors")
    if missing:
        raise _problem(root, f"incomplete weights folder (missing {' and '.join(missing)})")
    specialists, sizes = {}, {}
    for path in files:
        try:
            config = read_config(path)
        except CheckpointError as exc:
            raise WeightsError(
                f"{exc}\nRe-export it with python -m training.ship.export."
            ) from None
        models = config.get("models", {})
        absent = [role for role in ROLES if role not in models]
        if absent:
            raise WeightsError(
                f"{path}: checkpoint has no {' or '.join(absent)} "
                "(export a training run with python -m training.ship.export)"
            )
        domain = config.get("domain") or path.stem  # None: trained without --domain
        if domain != path.stem:
            raise WeightsError(
                f"{path}: holds the {domain!r} specialist; name it {domain}.safetensors"
            )
        specialists[domain] = path
        sizes[domain] = int(config.get("size", 256))
    judge = root / JUDGE_FILE
    return WeightsFolder(root, router, specialists, sizes, judge if judge.is_file() else None)


def weights_fingerprints(weights: WeightsFolder) -> dict[str, str | None]:
    """Hashes of what the served colours depend on: router, specialists and judge (what a
    judge calibration or a restraint table records, to tell when it is stale)."""
    from discriminators.scoring import fingerprint  # torch: only when used

    return {
        "router": fingerprint(weights.router / "router.safetensors"),
        **{domain: fingerprint(path) for domain, path in weights.specialists.items()},
        "judge": fingerprint(weights.judge) if weights.judge is not None else None,
    }
