"""train_specialist under torchrun: 2 CPU processes (gloo) take the same steps as 1 process.

The comparison uses a configuration whose every sample's output does not depend on the rest
of its batch (no batch norm: norm=none in the U-Net, spectral norm in the discriminator, no
dropout), so the only difference left between 1x4 and 2x2 is float summation order.
"""

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist
from safetensors.torch import load_file

from training.distributed import epoch_batches, rank_batches
from training.train_specialist import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
BATCH_INDEPENDENT = {
    "arch": "unet",
    "arch_args": {"ngf": 8, "num_downs": 5, "norm": "none", "dropout": False},
    "spectral_norm": True,
    "size": 32,
    "batch_size": 4,
}
STEPS = 6
# Observed: 1.0e-6 after 6 Adam steps (lr 2e-4), float32 summation order. Ranks that train
# on their own half batches without averaging gradients end 1.1e-2 away.
ATOL = 1e-5


def _config(data: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(BATCH_INDEPENDENT, data=str(data), out=str(out), domain="warm")
    settings |= dict(steps=STEPS, warmup_steps=2, log_every=1, eval_every=STEPS, num_val=4)
    settings |= dict(checkpoint_every=STEPS, threads=1, progress=False)
    return TrainConfig(**(settings | overrides))


def _argv(config: TrainConfig) -> list[str]:
    arch_args = [f"--arch-arg={k}={str(v).lower()}" for k, v in config.arch_args.items()]
    return [
        *("--data", config.data, "--domain", "warm", "--out", config.out, "--arch", "unet"),
        *arch_args,
        *("--spectral-norm", "--size", "32", "--batch-size", "4", "--steps", str(STEPS)),
        *("--warmup-steps", "2", "--log-every", "1", "--eval-every", str(STEPS)),
        *("--checkpoint-every", str(STEPS), "--num-val", "4", "--threads", "1", "--no-progress"),
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(argv: list[str], processes: int = 2) -> str:
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nnodes", "1"),
        *("--nproc-per-node", str(processes), "--master-addr", "127.0.0.1"),
        *("--master-port", str(_free_port()), "-m", "training.train_specialist", *argv),
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _max_difference(a: Path, b: Path) -> float:
    """Largest absolute difference over the models' tensors (optimizer state aside)."""
    one, two = load_file(a), load_file(b)
    assert one.keys() == two.keys()
    models = [k for k in one if k.startswith(("generator.", "discriminator."))]
    assert models
    return max((one[k].double() - two[k].double()).abs().max().item() for k in models)


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_take_disjoint_shares_of_the_same_global_batches(world):
    for epoch in range(2):
        global_batches = epoch_batches(30, 8, seed=3, epoch=epoch)
        shares = [rank_batches(30, 8, 3, epoch, rank, world) for rank in range(world)]
        for i, batch in enumerate(global_batches):
            parts = [share[i] for share in shares]
            assert all(len(part) == 8 // world for part in parts)
            assert sorted(sum(parts, [])) == sorted(batch)  # disjoint, and all of it
        seen = [index for share in shares for batch in share for index in batch]
        assert len(seen) == len(set(seen))  # no photo twice in one epoch


@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch built without gloo"
)
def test_two_processes_resume_a_run_and_match_one_process(photo_folder, tmp_path):
    """1 process, batch 4, to step 6 == 1 process to step 1, then torchrun 2 processes x 2.

    The torchrun run resumes (every rank reads rank 0's checkpoint) and trains the rest:
    the last L1-only step and four adversarial ones, with gradients averaged over the ranks.
    """
    one = _config(photo_folder, tmp_path / "one")
    train(one)
    two = _config(photo_folder, tmp_path / "two")
    train(_config(photo_folder, two.out, stop_at=1))

    out = _torchrun(_argv(two))
    difference = _max_difference(
        tmp_path / "one" / "checkpoint.safetensors", tmp_path / "two" / "checkpoint.safetensors"
    )
    print(f"max |1 process - 2 processes| after {STEPS} steps: {difference:.2e}")
    assert difference < ATOL
    assert out.count("resuming from") == 1  # rank 0 speaks for the run

    rows_one, rows_two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert [r["step"] for r in rows_two] == [str(s) for s in range(1, STEPS + 1)]  # one writer
    for a, b in zip(rows_one, rows_two):  # logged losses are the global batch's, not a rank's
        assert float(b["loss_l1"]) == pytest.approx(float(a["loss_l1"]), rel=1e-4)
        assert b["loss_d"] == "" or float(b["loss_d"]) == pytest.approx(float(a["loss_d"]), 1e-4)
