"""common.files: atomic writes that never go through a link, and cleanup of killed writes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.files import (
    UnsafePathError,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    open_fresh,
    remove_stale_temps,
)

ROOT = Path(__file__).resolve().parents[1]
# Starts an atomic write, says so, then hangs: a writer killed (or alive) mid-write.
HANG = (
    "import sys, time; from common.files import atomic_write\n"
    "def write(handle):\n"
    "    handle.write(b'half a photo'); handle.flush(); print('writing', flush=True)\n"
    "    time.sleep(120)\n"
    "atomic_write(sys.argv[1], write)\n"
)


def hanging_writer(path: Path) -> subprocess.Popen:
    """A process in the middle of writing ``path`` (its temporary file exists)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HANG, str(path)], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout.readline().strip() == "writing"
    return proc


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".partial-"))


def test_a_link_as_the_file_is_replaced_and_its_target_kept(tmp_path):
    target = tmp_path / "input.png"
    target.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").symlink_to(target)
    os.link(target, out / "b.png")  # a hard link to the same file
    atomic_write_bytes(out / "a.png", b"new")
    atomic_write_bytes(out / "b.png", b"new")
    assert target.read_bytes() == b"precious"
    assert not (out / "a.png").is_symlink() and (out / "a.png").read_bytes() == b"new"
    assert (out / "b.png").read_bytes() == b"new" and target.stat().st_nlink == 1


def test_a_folder_link_inside_the_output_tree_is_refused(tmp_path):
    elsewhere = tmp_path / "in"
    elsewhere.mkdir()
    (elsewhere / "s.png").write_bytes(b"precious")
    out = tmp_path / "out"
    (out / "deep").mkdir(parents=True)
    (out / "deep" / "sub").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="symbolic link") as info:
        atomic_write_bytes(out / "deep" / "sub" / "s.png", b"new", root=out)
    assert info.value.filename == str(out / "deep" / "sub")
    assert (elsewhere / "s.png").read_bytes() == b"precious" and temps(elsewhere) == []
    # the root itself may be a link (the user chose it), and folders are made as needed
    (tmp_path / "link").symlink_to(out)
    atomic_write_json(tmp_path / "link" / "new" / "x.json", {"a": 1}, root=tmp_path / "link")
    assert (out / "new" / "x.json").read_text() == '{\n  "a": 1\n}\n'


def test_a_failed_write_leaves_nothing(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"old")

    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "a.txt", broken)
    assert (tmp_path / "a.txt").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_names_of_255_bytes_fit(tmp_path):
    name = "é" * 125 + ".png"  # 254 bytes
    atomic_write_bytes(tmp_path / name, b"x")
    assert (tmp_path / name).read_bytes() == b"x"


def test_open_fresh_appends_to_a_new_file_not_through_a_link(tmp_path):
    victim = tmp_path / "photo.png"
    victim.write_bytes(b"precious")
    (tmp_path / "report.jsonl").symlink_to(victim)
    with open_fresh(tmp_path / "report.jsonl", b"kept\n") as handle:
        handle.write(b"line\n")
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "report.jsonl").read_bytes() == b"kept\nline\n"


def test_killed_writers_temps_are_removed_live_ones_and_user_files_kept(tmp_path):
    killed = hanging_writer(tmp_path / "a.png")
    killed.kill()
    killed.wait()
    leftover = temps(tmp_path)
    assert len(leftover) == 1 and len(leftover[0]) < 40  # short, whatever the file's name
    live = hanging_writer(tmp_path / "b.png")
    try:
        mine = {".a.png.tmp", "b.tmp", ".partial-0123.tmp", ".partial-0123456789abcdef.tmp.bak"}
        for name in mine:
            (tmp_path / name).write_bytes(b"user file")
        assert remove_stale_temps(tmp_path) == 1
        assert leftover[0] not in temps(tmp_path)
        assert len(temps(tmp_path)) == 1 + 2  # the live writer's, and two user files
        assert all((tmp_path / name).read_bytes() == b"user file" for name in mine)
    finally:
        live.kill()
        live.wait()
