"""python -m serve.colorize stopped by SIGTERM, Ctrl-C or SIGKILL: the outputs being written
are finished and reported, a rerun with --skip-existing colours each photo exactly once, and
the temporary files of killed runs are removed (the README's "What is promised": kill and
pre-emption).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from tests.serve_support import grey_photo
from tests.test_files import hanging_writer, temps
from tests.test_safe_folders import ROOT, records, run_cli, snapshot


def _cli_process(weights, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "serve.colorize", *map(str, args), "--weights", str(weights),
               "--no-progress", "--threads", "1"]  # fmt: skip
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_7_sigterm_checkpoints_and_a_rerun_finishes_each_photo_once(weights, tmp_path, capsys):
    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.jsonl"
    source.mkdir()
    for i in range(40):
        grey_photo(160, 120, seed=i).save(source / f"p{i:02d}.png")
    before = snapshot(source)
    proc = _cli_process(weights, source, "-o", out, "--report", report, "--batch-size", "1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if report.exists() and len(report.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "--skip-existing" in err
    assert "colourized" in err and "not reached (interrupted)" in err and "Traceback" not in err
    first = records(report)
    assert 3 <= len(first) < 40
    assert sorted(Path(r["output"]).name for r in first) == sorted(p.name for p in out.iterdir())
    for record in first:  # every output on disk is complete and reported
        assert Image.open(record["output"]).size == (160, 120)
    run_cli(weights, source, "-o", out, "--report", report, "--skip-existing", expect=0,
            capsys=capsys)  # fmt: skip
    lines = records(report)
    done = [r["input"] for r in lines if not r["skipped"] and r["error"] is None]
    assert sorted(done) == sorted(str(p) for p in source.iterdir())  # each exactly once
    assert len(lines) == len(first) + 40
    assert snapshot(source) == before


def test_7_sigint_is_handled_the_same_way(weights, tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for i in range(40):
        grey_photo(160, 120, seed=i).save(source / f"p{i:02d}.png")
    proc = _cli_process(weights, source, "-o", out, "--batch-size", "1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("*.png"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted (Ctrl-C)" in err and "colourized" in err and "Traceback" not in err
    assert temps(out) == []


def test_7_temporary_files_of_killed_runs_are_removed(weights, tmp_path, capsys):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    (out / "sub").mkdir(parents=True)
    grey_photo(30, 20).save(source / "a.png")
    killed = hanging_writer(out / "sub" / "old.png")  # a run killed by SIGKILL mid-write
    killed.kill()
    killed.wait()
    assert len(temps(out / "sub")) == 1
    user_files = [out / "sub" / ".old.png.tmp", out / "notes.tmp", source / ".partial-x.tmp"]
    for path in user_files:
        path.write_text("mine")
    live = hanging_writer(out / "b.png")  # another shard writing into the same folder
    try:
        (source / "sub").mkdir()
        grey_photo(30, 20).save(source / "sub" / "c.png")
        err = run_cli(weights, source, "-o", out, expect=0, capsys=capsys)
        assert "removed 1 temporary file(s) left by a killed run" in err
        assert temps(out / "sub") == [] and len(temps(out)) == 1  # the live one is kept
        assert all(path.read_text() == "mine" for path in user_files)
    finally:
        live.kill()
        live.wait()
