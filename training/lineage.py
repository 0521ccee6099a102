"""The data a specialist learnt from, its own run's and every run it was fine-tuned from.

A fine-tune records its start's lineage when it begins (``data.learnt_from`` in its config), so
an exported specialist still knows it after the start's file is gone or overwritten; for
specialists trained before that, the ``--init-from`` files are followed while they exist.
"""

from pathlib import Path

from specialists.checkpoint import CheckpointError, read_config
from training.run_files import CHECKPOINT

LEARNT_FROM = "learnt_from"  # config["data"] key: [{root, domain}] of the runs before this one
MAX_CHAIN = 8


def _own_run(config: dict) -> list[dict]:
    data = config.get("data") or {}
    return [{"root": data["root"], "domain": data.get("domain")}] if data.get("root") else []


def start_file(start: str) -> Path:
    """The checkpoint an ``--init-from`` names (a run folder stands for its checkpoint)."""
    path = Path(start)
    return path / CHECKPOINT if path.is_dir() else path


def lineage(config: dict) -> tuple[list[dict], list[str]]:
    """([{root, domain}] of every training run behind a specialist, newest first; what could
    not be traced, with why)."""
    runs, missing, visited = [], [], set()
    for _ in range(MAX_CHAIN):
        runs += _own_run(config)
        recorded = (config.get("data") or {}).get(LEARNT_FROM)
        if recorded is not None:  # recorded when the fine-tune began: the authority
            return runs + list(recorded), missing
        start = (config.get("train") or {}).get("init_from")
        if not start:
            return runs, missing
        path = start_file(start).resolve()
        if path in visited:
            missing.append(f"its start {start} (now a later model: the file was overwritten)")
            return runs, missing
        visited.add(path)
        try:
            config = read_config(path)
        except CheckpointError as exc:
            missing.append(f"its start {start} ({exc})")
            return runs, missing
    missing.append(f"a chain of more than {MAX_CHAIN} fine-tunes")
    return runs, missing
