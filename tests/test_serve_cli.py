"""python -m serve.colorize: inputs, mirrored outputs, report, exit codes, resume, shards."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serve.colorize import main
from serve.inputs import expand_inputs, shard_of
from tests.serve_support import colour_photo, grey_photo

REPORT_KEYS = {
    "input": str, "output": (str, type(None)), "domain": (str, type(None)),
    "confidence": (float, type(None)), "probs": dict, "strategy": (str, type(None)),
    "scores": dict, "seconds": float, "error": (str, type(None)), "skipped": bool,
    "already_colour": (bool, type(None)), "size": (list, type(None)),
    "model_size": (list, type(None)), "notes": list, "strength": (float, type(None)),
    "restraint": (float, type(None)),
}  # fmt: skip


def _run(weights, *args):
    return main([*map(str, args), "--weights", str(weights), "--no-progress"])


def _report(path):
    lines = Path(path).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        assert set(record) == set(REPORT_KEYS)
        for key, kind in REPORT_KEYS.items():
            assert isinstance(record[key], kind), (key, record[key])
    return records


def _tree(root):
    (root / "sub" / "deep").mkdir(parents=True)
    grey_photo(64, 48).save(root / "a.jpg")
    rgba = Image.merge("RGBA", [grey_photo(40, 30)] * 3 + [grey_photo(40, 30, seed=4)])
    rgba.save(root / "sub" / "b.png")
    Image.fromarray(np.asarray(grey_photo(50, 20), np.uint16) * 257).save(root / "sub/deep/c.tif")
    colour_photo(30, 30).save(root / "colour.png")
    (root / "notes.txt").write_text("not a photo")  # not an image suffix: not an input
    grey_photo(8, 8).save(root / ".hidden.jpg")
    return root


def test_folder_is_mirrored_with_a_full_report(weights, tmp_path, capsys):
    source, out = _tree(tmp_path / "in"), tmp_path / "out"
    assert _run(weights, source, "-o", out, "--report", tmp_path / "r.jsonl") == 0
    expected = {"a.png": (64, 48), "sub/b.png": (40, 30), "sub/deep/c.png": (50, 20),
                "colour.png": (30, 30)}  # fmt: skip
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == set(expected)
    for name, size in expected.items():
        assert Image.open(out / name).size == size
    assert Image.open(out / "sub/b.png").mode == "RGBA"
    records = {Path(r["input"]).name: r for r in _report(tmp_path / "r.jsonl")}
    assert set(records) == {"a.jpg", "b.png", "c.tif", "colour.png"}
    assert records["colour.png"]["already_colour"] is True
    assert records["a.jpg"]["already_colour"] is False and records["a.jpg"]["error"] is None
    assert "16-bit grey" in records["c.tif"]["notes"]
    for record in records.values():
        assert record["strategy"] in ("router", "discriminator")
        assert set(record["probs"]) == {"general", "landscape", "portrait"}
        assert record["seconds"] > 0 and Path(record["output"]).is_file()
    err = capsys.readouterr().err
    assert "colourized 4 photo(s)" in err and "images/s" in err and "0 failed" in err


def test_broken_inputs_are_reported_and_the_rest_done(weights, tmp_path, capsys):
    source = tmp_path / "in"
    source.mkdir()
    grey_photo(40, 40).save(source / "good.jpg")
    (source / "empty.jpg").write_bytes(b"")
    (source / "text.png").write_text("hello\n" * 50)
    grey_photo(200, 200).save(source / "full.jpg")
    data = (source / "full.jpg").read_bytes()
    (source / "full.jpg").unlink()
    (source / "cut.jpg").write_bytes(data[: len(data) // 2])
    code = _run(weights, source, "-o", tmp_path / "out", "--report", tmp_path / "r.jsonl")
    assert code == 1
    assert (tmp_path / "out" / "good.png").is_file()
    errors = {Path(r["input"]).name: r["error"] for r in _report(tmp_path / "r.jsonl")}
    assert errors["good.jpg"] is None
    assert "empty file" in errors["empty.jpg"]
    assert "not an image" in errors["text.png"]
    assert "truncated" in errors["cut.jpg"]
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"error: {source / 'empty.jpg'}: empty file" in err
    assert "3 failed" in err


def test_globs_files_and_thresholds(weights, tmp_path):
    for name in ("x1.jpg", "x2.jpg", "y.png"):
        grey_photo(48, 48).save(tmp_path / name)
    out = tmp_path / "out"
    pattern = str(tmp_path / "x*.jpg")
    args = (pattern, tmp_path / "y.png", "-o", out, "--report", tmp_path / "r.jsonl")
    assert _run(weights, *args, "--threshold", "0") == 0
    assert sorted(p.name for p in out.iterdir()) == ["x1.png", "x2.png", "y.png"]
    assert {r["strategy"] for r in _report(tmp_path / "r.jsonl")} == {"router"}
    assert _run(weights, *args, "--threshold", "1.5") == 0
    records = _report(tmp_path / "r.jsonl")
    assert {r["strategy"] for r in records} == {"discriminator"}
    assert all(set(r["scores"]) == {"general", "landscape", "portrait"} for r in records)
    assert _run(weights, *args, "--domain", "portrait") == 0
    records = _report(tmp_path / "r.jsonl")
    assert {(r["strategy"], r["domain"]) for r in records} == {("forced", "portrait")}


def test_recursive_glob_mirrors_from_its_base(weights, tmp_path):
    _tree(tmp_path / "in")
    out = tmp_path / "out"
    assert _run(weights, str(tmp_path / "in" / "**" / "*.png"), "-o", out) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "colour.png", "sub/b.png",
    ]  # fmt: skip


def test_skip_existing_resumes(weights, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        grey_photo(40, 32, seed=i).save(source / f"p{i}.jpg")
    out, report = tmp_path / "out", tmp_path / "r.jsonl"
    assert _run(weights, source, "-o", out, "--report", report) == 0
    (out / "p1.png").unlink()
    os.utime(out / "p0.png", (1_000_000, 1_000_000))
    assert _run(weights, source, "-o", out, "--report", report, "--skip-existing") == 0
    assert (out / "p1.png").is_file()
    assert (out / "p0.png").stat().st_mtime == 1_000_000  # not redone
    records = _report(report)
    assert len(records) == 6  # the first run's 3 lines, then the resumed run's 3 (appended)
    resumed = {Path(r["input"]).name: r["skipped"] for r in records[3:]}
    assert resumed == {"p0.jpg": True, "p1.jpg": False, "p2.jpg": True}


def test_shards_partition_the_inputs_exactly(weights, tmp_path):
    source = tmp_path / "in"
    (source / "s").mkdir(parents=True)
    for i in range(10):
        grey_photo(32, 32, seed=i).save(source / ("s" if i % 2 else ".") / f"p{i}.png")
    seen = []
    for k in range(3):
        report = tmp_path / f"r{k}.jsonl"
        assert (
            _run(weights, source, "-o", tmp_path / "out", "--shard", f"{k}/3", "--report", report)
            == 0
        )
        seen.append({r["input"] for r in _report(report)})
    everything = {str(p) for p in source.rglob("*.png")}
    assert set().union(*seen) == everything
    assert sum(len(s) for s in seen) == len(everything)  # no input in two shards
    assert len(list((tmp_path / "out").rglob("*.png"))) == 10


def test_shard_of_is_balanced_and_independent_of_other_files():
    names = [f"scans/{i:05d}.tif" for i in range(3000)]
    counts = np.bincount([shard_of(n, 4) for n in names], minlength=4)
    assert counts.sum() == 3000 and counts.min() > 650  # about 750 each
    assert shard_of("scans/00001.tif", 4) == shard_of("scans/00001.tif", 4)


def test_format_jpg_and_name_clashes(weights, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    grey_photo(30, 20).save(source / "photo.jpg")
    grey_photo(30, 20, seed=1).save(source / "photo.png")
    out = tmp_path / "out"
    assert _run(weights, source, "-o", out, "--format", "jpg") == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo.jpg.jpg", "photo.png.jpg"]
    assert Image.open(out / "photo.jpg.jpg").format == "JPEG"


def test_expand_inputs_refuses_overlaps(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    grey_photo(8, 8).save(source / "a.png")
    with pytest.raises(Exception, match="inside the input"):
        expand_inputs([str(source)], source / "out", "png")
    with pytest.raises(Exception, match="inside the input"):
        expand_inputs([str(source)], source, "png")  # would write a.png over a.png
    with pytest.raises(Exception, match="inside the output folder"):
        expand_inputs([str(source / "a.png")], source, "png")
    assert len(expand_inputs([str(source)], tmp_path / "out", "png")) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.jpg"], "no such file or folder"),
        (["*.nothing"], "no file matches"),
        (["in", "--domain", "underwater"], "no such specialist"),
        (["in", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["in", "--workers", "0"], "--workers must be at least 1"),
        (["in", "--threshold", "-1"], "--threshold must be >= 0"),
        (["in/a.png", "-o", "in"], "inside the output folder"),
    ],
)
def test_usage_errors_exit_2(weights, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    grey_photo(8, 8).save(tmp_path / "in" / "a.png")
    if "-o" not in args:
        args = [*args, "-o", "out"]
    assert _run(weights, *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "in" / "a.png.png").exists()


def test_bad_shard_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["x", "-o", str(tmp_path), "--shard", "3/3"])
    assert info.value.code == 2 and "0 <= K < N" in capsys.readouterr().err


def test_missing_weights_say_how_to_train(tmp_path, capsys):
    grey_photo(8, 8).save(tmp_path / "a.png")
    args = [str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]
    assert main([*args, "--weights", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "no such weights folder" in err and "Traceback" not in err
    assert "python -m training.train_specialist" in err and "--weights" in err
    (tmp_path / "half" / "router").mkdir(parents=True)
    assert main([*args, "--weights", str(tmp_path / "half")]) == 2
    assert "missing specialists/*.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_without_o_outputs_go_to_a_colorized_folder(weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grey_photo(20, 12).save(tmp_path / "photo.jpg")
    assert _run(weights, "photo.jpg") == 0
    assert Image.open(tmp_path / "colorized" / "photo.png").size == (20, 12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colorized", "photo.jpg"]


_NO_TORCH_PROBE = """
import sys
from serve.colorize import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(
    m for m in ("torch", "timm", "torchvision", "matplotlib", "torch._dynamo") if m in sys.modules
)
print("HEAVY", ",".join(heavy), "CODE", code, file=sys.stderr)
"""


def _probe(*args, cwd):
    """Run the CLI in a fresh interpreter; (stdout, stderr, heavy modules it imported)."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_PROBE, *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    heavy, code = proc.stderr.rsplit("HEAVY", 1)[1].split("CODE")
    return proc.stdout, proc.stderr, heavy.strip(), int(code)


def test_help_and_usage_errors_import_no_torch(tmp_path):
    """--help and the usage errors a user makes answer without loading torch or timm."""
    weights = tmp_path / "w"
    (weights / "specialists").mkdir(parents=True)
    for name in ("sepia", "wedding"):
        (weights / "specialists" / f"{name}.safetensors").write_bytes(b"")
    out, _, heavy, code = _probe("--help", "--weights", weights, cwd=tmp_path)
    assert code == 0 and heavy == ""
    assert f"domains in {weights}: sepia, wedding" in out
    assert "(default: 8" in out and "examples:" in out and "python -m serve.colorize" in out
    out, _, heavy, code = _probe("--help", cwd=tmp_path)
    assert heavy == "" and "domains in the shipped weights: general, landscape, portrait" in out
    for args, message in (
        (["missing.jpg"], "no such file or folder"),
        (["x.jpg", "--batch-size", "0"], "--batch-size must be at least 1"),
        ([".", "--weights", weights, "--domain", "portrait"], "have sepia, wedding"),
        (["x.jpg", "--nonsense"], "unrecognized arguments"),
        (["x.jpg", "--strength", "5"], "--strength must be between 0 and 2"),
    ):
        _, err, heavy, code = _probe(*args, cwd=tmp_path)
        assert code == 2 and message in err and heavy == "", (args, err)


def test_colouring_a_photo_never_imports_torchs_compiler(weights, tmp_path):
    """Serving imports timm without torch._dynamo (common.lazy_dynamo: 1.1-1.3 s of start-up),
    and colours and writes the photo all the same."""
    grey_photo(60, 40).save(tmp_path / "a.jpg")
    out = tmp_path / "out"
    args = ("a.jpg", "-o", out, "--weights", weights, "--no-progress")
    _, err, heavy, code = _probe(*args, cwd=tmp_path)
    assert code == 0, err
    assert heavy == "timm,torch,torchvision", err
    assert Image.open(out / "a.png").size == (60, 40)


def _recording(colorizer, monkeypatch):
    """Record the model-input shapes of every batch the models are given."""
    from serve.colorizer import Colorizer

    batches = []
    real = Colorizer.predict

    def predict(self, photos, domain=None):
        batches.append([self.input_shape(p) for p in photos])
        return real(self, photos, domain)

    monkeypatch.setattr(Colorizer, "predict", predict)
    return batches


def test_a_mixed_folder_fills_batches_of_one_shape(weights, tmp_path, monkeypatch):
    """Alternating sizes: each forward pass gets a full batch of one shape (before buckets,
    every batch of 4 was split into two passes of 2); every photo is still done and reported."""
    from serve.batch import run
    from serve.colorizer import Colorizer

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(12):
        grey_photo(*((64, 64) if i % 2 else (128, 64)), seed=i).save(folder / f"{i:02d}.png")
    colorizer = Colorizer.from_weights(weights, threshold=0.0)
    jobs = expand_inputs([str(folder)], tmp_path / "out", "png")
    batches = _recording(colorizer, monkeypatch)
    summary = run(colorizer, jobs, None, batch_size=4, progress=False)
    assert summary.done == 12 and summary.failed == 0
    assert all(len(set(batch)) == 1 for batch in batches)
    assert sorted(map(len, batches)) == [2, 2, 4, 4]
    for job in jobs:
        assert Image.open(job.output).size == Image.open(job.source).size


def test_two_model_workers_on_a_cpu_one_on_a_gpu():
    from serve.batch import model_workers

    assert model_workers("cpu", 2) == (2, 1)
    assert model_workers("cpu", 16) == (2, 8)
    assert model_workers("cpu", 1) == (1, 1)  # --threads 1: one worker, one thread
    assert model_workers("cuda", 16) == (1, 16)
    assert model_workers("cpu", 2, workers=1) == (1, 2)  # --workers 1: as before workers
    assert model_workers("cpu", 2, workers=4) == (4, 1)


def test_two_workers_colour_two_buckets_at_once_with_the_same_results(
    weights, tmp_path, monkeypatch
):
    """The second bucket starts while the first is in the models (each call waits for the
    other at a barrier, which times out when the calls run one after another); outputs and
    the report's order are those of one worker, and the caller's torch threads are kept."""
    import threading

    import torch

    from serve.batch import run
    from serve.colorizer import Colorizer
    from serve.run_report import Report

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(10):
        grey_photo(*((64, 64) if i % 2 else (96, 64)), seed=i).save(folder / f"{i:02d}.png")
    colorizer = Colorizer.from_weights(weights, threshold=0.5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread per worker either way: the same float rounding
    runs = {}
    try:
        for workers in (1, 2):
            out = tmp_path / f"out{workers}"
            jobs = expand_inputs([str(folder)], out, "png")
            report = Report(tmp_path / f"{workers}.jsonl")
            if workers == 2:
                barrier, real, met = threading.Barrier(2, timeout=20), Colorizer.predict, []

                def predict(self, photos, domain=None, *, real=real, barrier=barrier, met=met):
                    if len(met) < 2:
                        met.append(barrier.wait() is not None)
                    return real(self, photos, domain)

                monkeypatch.setattr(Colorizer, "predict", predict)
            summary = run(colorizer, jobs, report, batch_size=3, progress=False, workers=workers)
            report.close()
            assert summary.done == 10 and summary.failed == 0
            assert torch.get_num_threads() == 1
            runs[workers] = (_report(tmp_path / f"{workers}.jsonl"), out)
    finally:
        torch.set_num_threads(threads)
    assert met == [True, True]  # both calls passed the barrier: they ran at the same time
    (one, out1), (two, out2) = runs[1], runs[2]
    assert [r["input"] for r in one] == [r["input"] for r in two]
    assert [r["domain"] for r in one] == [r["domain"] for r in two]
    for r in one:
        name = Path(r["output"]).name
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name


def test_the_pipeline_holds_photos_within_its_memory_budget(weights, tmp_path, monkeypatch):
    """With room for one photo at a time, nothing is decoded ahead: batches of one."""
    from serve import batch
    from serve.colorizer import Colorizer

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        grey_photo(64, 64, seed=i).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    colorizer = Colorizer.from_weights(weights, threshold=0.0)
    jobs = expand_inputs([str(folder)], tmp_path / "out", "png")
    batches = _recording(colorizer, monkeypatch)
    monkeypatch.setattr(batch, "HELD_PIXELS", 64 * 64)
    summary = batch.run(colorizer, jobs, None, batch_size=8, progress=False)
    assert (summary.done, summary.failed) == (5, 1)
    assert [len(batch) for batch in batches] == [1] * 5


def test_big_scans_lower_the_mmap_threshold_only_while_in_flight(weights, tmp_path, monkeypatch):
    """Small photos' batches keep glibc's 32 MiB threshold (activations reuse the heap); a big
    scan lowers it to 4 MiB from decoding until written or failed (its buffers go back)."""
    from serve import _malloc, batch
    from serve.colorizer import Colorizer

    folder = tmp_path / "in"
    folder.mkdir()
    for name, size in (("0-small", (64, 64)), ("1-big", (128, 128)), ("2-small", (64, 48))):
        grey_photo(*size, seed=len(name)).save(folder / f"{name}.png")
    grey_photo(128, 128, seed=9).save(folder / "3-big-unwritable.png")
    colorizer = Colorizer.from_weights(weights, threshold=0.0)
    jobs = expand_inputs([str(folder)], tmp_path / "out", "png")
    (tmp_path / "out" / "3-big-unwritable.png").mkdir(parents=True)  # its write fails
    calls = []
    monkeypatch.setattr(_malloc, "set_mmap_threshold", calls.append)
    monkeypatch.setattr(batch, "BATCH_PIXELS", 100 * 100)  # 128 x 128 counts as a big scan
    summary = batch.run(colorizer, jobs, None, batch_size=1, progress=False)
    assert (summary.done, summary.failed) == (3, 1)
    assert calls[0] == _malloc.SMALL_PHOTOS_BYTES and calls[-1] == _malloc.SMALL_PHOTOS_BYTES
    assert calls.count(_malloc.BIG_SCAN_BYTES) in (1, 2)  # the two big ones may overlap
    assert all(a != b for a, b in zip(calls, calls[1:]))  # set only when it changes
