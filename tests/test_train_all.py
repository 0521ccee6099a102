"""train_all: every domain at once in its own process, failures isolated, resumable."""

import contextlib
import csv
import io
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from specialists.checkpoint import read_config
from tests.conftest import make_split_folder
from training import train_specialist
from training.train_all import main, plan_jobs

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    *("--arch", "unet", "--arch-arg", "ngf=8", "--arch-arg", "num_downs=5", "--size", "32"),
    *("--batch-size", "4", "--num-val", "4", "--log-every", "1", "--threads", "1"),
]


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One train_all run over three domains: "warm" was stopped at step 6 by an earlier run,
    "cool" starts afresh, "broken" has too few photos to train."""
    root = tmp_path_factory.mktemp("train_all")
    data = make_split_folder(root / "data")
    (data / "train" / "broken").mkdir()
    for photo in sorted((data / "train" / "warm").iterdir())[:2]:  # fewer than a batch
        shutil.copy(photo, data / "train" / "broken" / photo.name)
    runs = root / "runs"
    flags = [*TINY, "--steps", "20"]
    earlier = ["--data", str(data), "--domain", "warm", "--out", str(runs / "warm"), *flags]
    with contextlib.redirect_stdout(io.StringIO()):
        assert train_specialist.main([*earlier, "--stop-at", "6", "--no-progress"]) == 0
    code, out, err = _run(["--data", data, "--out", runs, *flags])
    return SimpleNamespace(data=data, runs=runs, code=code, out=out, err=err)


def test_every_domain_trains_at_once(first_run):
    spans = []
    for domain in ("cool", "warm"):
        rows = [r for r in _rows(first_run.runs / domain) if int(r["step"]) > 6]  # this run's
        assert read_config(first_run.runs / domain / "checkpoint.safetensors")["step"] == 20
        spans.append((float(rows[0]["time"]), float(rows[-1]["time"])))
    (start_a, end_a), (start_b, end_b) = spans
    assert max(start_a, start_b) < min(end_a, end_b), f"wall-clock spans do not overlap: {spans}"
    log = (first_run.runs / "cool" / "train.log").read_text()
    assert "=== " in log and "--domain cool" in log and "--threads 1" in log
    assert "train: 16 colour photos" in log  # the run's own output


def test_a_failing_domain_does_not_stop_the_others(first_run):
    assert first_run.code == 1
    assert "error: 1 of 3 runs failed: broken" in first_run.err
    assert "need at least --batch-size" in first_run.err  # the end of broken's own log
    assert "Traceback" not in first_run.err
    assert not (first_run.runs / "broken" / "checkpoint.safetensors").exists()
    for domain in ("cool", "warm"):
        assert [int(r["step"]) for r in _rows(first_run.runs / domain)] == list(range(1, 21))


def test_a_run_with_a_checkpoint_resumes(first_run):
    log = (first_run.runs / "warm" / "train.log").read_text()
    assert "resuming from" in log and "at step 6 of 20" in log
    assert "resuming from" not in (first_run.runs / "cool" / "train.log").read_text()


def test_jobs_share_the_cores_and_get_one_gpu_each():
    jobs = plan_jobs(
        "data", "runs", ["a", "b", "c"], ["--steps", "9"], cores=16, gpus=[], router=True
    )
    assert [job.name for job in jobs] == ["a", "b", "c", "router"]
    for job in jobs:
        assert job.command[job.command.index("--threads") + 1] == "4"
        assert job.command[job.command.index("--device") + 1] == "cpu"
        assert job.run_dir == Path("runs") / job.name
    assert jobs[0].command[-2:] == ["--steps", "9"]  # forwarded unchanged
    assert "training.train_router" in jobs[3].command and "--steps" not in jobs[3].command

    two_cores = plan_jobs("data", "runs", ["a", "b", "c"], [], cores=2, gpus=[])
    assert {job.command[job.command.index("--threads") + 1] for job in two_cores} == {"1"}

    on_gpus = plan_jobs("data", "runs", ["a", "b", "c"], [], cores=8, gpus=["4", "6"])
    assert [job.env["CUDA_VISIBLE_DEVICES"] for job in on_gpus] == ["4", "6", "4"]
    assert all(job.command[job.command.index("--device") + 1] == "cuda" for job in on_gpus)
    pinned = plan_jobs("d", "r", ["a", "b"], [], cores=8, gpus=["0", "1"], device="cuda:1")
    assert all("CUDA_VISIBLE_DEVICES" not in job.env for job in pinned)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--domains", "warm", "sepia"], "unknown domain sepia"),
        (["--domain", "warm"], "use --domains"),
        (["--bogus", "1"], "unrecognized arguments: --bogus 1"),
        (["--threads", "0"], "--threads must be at least 1"),
    ],
)
def test_usage_errors_are_one_clear_message(photo_folder, tmp_path, extra, message):
    code, out, err = _run(["--data", photo_folder, "--out", tmp_path / "runs", *extra])
    assert code == 2
    assert err.strip().splitlines() == [err.strip()] and message in err
    assert err.startswith("error: ")
    assert not (tmp_path / "runs").exists()


def test_a_runs_folder_that_cannot_be_made_starts_nothing(photo_folder, tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    code, out, err = _run(["--data", photo_folder, "--out", tmp_path / "taken", "--threads", "1"])
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Not a directory" in err
    assert "taken" in err and not out


def test_missing_data_folder(tmp_path):
    code, _, err = _run(["--data", tmp_path / "nowhere", "--out", tmp_path / "runs"])
    assert code == 2 and "nowhere: no such data folder" in err and "Traceback" not in err


# A stand-in for a training run: says it is ready, counts the interrupts it gets, "saves".
FAKE_RUN = """
import pathlib, signal, sys, time
hits = []
signal.signal(signal.SIGINT, lambda *_: hits.append(1))
path = pathlib.Path(sys.argv[1])
path.write_text("ready")
while not hits:
    time.sleep(0.02)
time.sleep(0.5)  # a second interrupt would arrive here
path.write_text(f"interrupts={len(hits)}")
sys.exit(130)
"""

RUN_FAKES = """
import sys
from pathlib import Path
from training.jobs import Job, run_jobs
runs = Path(sys.argv[1])
jobs = [Job(n, [sys.executable, "-c", sys.argv[2], str(runs / n / "mark")], runs / n) for n in "ab"]
sys.exit(run_jobs(jobs, progress=False))
"""


def test_ctrl_c_interrupts_every_run_once_and_waits_for_them(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", RUN_FAKES, str(tmp_path), FAKE_RUN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    marks = [tmp_path / name / "mark" for name in "ab"]
    deadline = time.time() + 60
    while not all(m.exists() and m.read_text() == "ready" for m in marks):
        assert time.time() < deadline and parent.poll() is None, parent.communicate()
        time.sleep(0.05)
    parent.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends to train_all
    out, err = parent.communicate(timeout=60)
    assert parent.returncode == 130, err
    assert [m.read_text() for m in marks] == ["interrupts=1", "interrupts=1"]
    assert "a: interrupted (checkpoint saved)" in err and "run the same command" in err
