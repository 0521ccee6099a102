"""Atomic, link-safe file writes: the one way the project puts a file on disk.

Every write goes to a short-named temporary file in the destination folder, is flushed and
fsynced, then renamed over the destination (``os.replace``), so a reader or a later
``--skip-existing`` run sees the old file or the whole new one, never half of one. The rename
replaces the destination's directory entry: a symbolic link or a hard link there is replaced,
and whatever it pointed at (an input photo, say) is never touched. Given ``root`` (an output
tree), a symbolic link on the way from ``root`` down to the file is refused
(:class:`UnsafePathError`); ``root`` itself may be a link, the user chose it.

Temporary names are ``.partial-<16 hex>.tmp`` whatever the destination is called (a 255-byte
name still fits) and are locked (``flock``) while being written, so :func:`remove_stale_temps`
can delete the ones a killed process left behind without touching a live writer's or any
file it did not make. POSIX only (``dir_fd`` and ``flock``).
"""

import errno
import fcntl
import json
import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

TEMP_PREFIX, TEMP_SUFFIX = ".partial-", ".tmp"
_TEMP_NAME = re.compile(r"\.partial-[0-9a-f]{16}\.tmp")


class UnsafePathError(OSError):
    """A write that would pass through a symbolic link inside the output tree."""


def _open_folder(folder: Path, root: Path | None, create: bool = True) -> int:
    """A descriptor of ``folder`` (created if missing); below ``root`` no link is followed."""
    if root is None:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    relative = Path(os.path.abspath(folder)).relative_to(os.path.abspath(root))
    if create:
        Path(root).mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    here = Path(root)
    try:
        for part in relative.parts:
            here = here / part
            if create:
                try:
                    os.mkdir(part, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise UnsafePathError(
                        errno.ELOOP, "is a symbolic link; refusing to write through it", str(here)
                    ) from None
                raise exc
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create_temp(dir_fd: int) -> tuple[int, str]:
    """A new, locked temporary file in the folder ``dir_fd``: (descriptor, name)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        name = f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
        fd = os.open(name, flags, 0o666, dir_fd=dir_fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:  # else a cleaner took it for a leftover before we locked it
            return fd, name
        os.close(fd)


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def atomic_write(
    path: str | Path, write: Callable[[BinaryIO], object], *, root: str | Path | None = None
) -> None:
    """Write ``path`` by calling ``write(handle)`` on a temporary file, then renaming it."""
    path = Path(path)
    dir_fd = _open_folder(path.parent, None if root is None else Path(root))
    try:
        fd, name = _create_temp(dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
                os.replace(name, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                name = ""
        finally:
            if name:
                _unlink(name, dir_fd)
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: str | Path, data: bytes, *, root: str | Path | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(data), root=root)


def atomic_write_text(path: str | Path, text: str, *, root: str | Path | None = None) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), root=root)


def atomic_write_json(path: str | Path, data: Any, *, root: str | Path | None = None) -> None:
    """Write ``data`` as indented, key-sorted JSON atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", root=root)


def open_fresh(
    path: str | Path, initial: bytes = b"", *, root: str | Path | None = None
) -> BinaryIO:
    """Atomically replace ``path`` by a new file holding ``initial``; return it open to append.

    For logs written line by line (a run's report): the file is a new inode of our own, so
    appending to it never writes through a link. Unbuffered: each ``write`` is one system call.
    """
    path = Path(path)
    dir_fd = _open_folder(path.parent, None if root is None else Path(root))
    try:
        fd, name = _create_temp(dir_fd)
        try:
            handle = os.fdopen(fd, "wb", buffering=0)
        except BaseException:
            os.close(fd)
            _unlink(name, dir_fd)
            raise
        try:
            handle.write(initial)
            os.fsync(fd)
            os.replace(name, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            handle.close()
            _unlink(name, dir_fd)
            raise
        return handle
    finally:
        os.close(dir_fd)


def check_writable(folder: str | Path, *, root: str | Path | None = None) -> None:
    """Create and remove a temporary file in ``folder`` (made if missing); OSError if we can't."""
    dir_fd = _open_folder(Path(folder), None if root is None else Path(root))
    try:
        fd, name = _create_temp(dir_fd)
        os.close(fd)
        _unlink(name, dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temps(folder: str | Path, *, root: str | Path | None = None) -> int:
    """Delete the temporary files killed writers left in ``folder``; returns how many.

    Only names this module makes, only regular files, and only unlocked ones (a live writer
    holds its lock until the rename), so another process's write in progress survives. With
    ``root``, a folder reached through a symbolic link below it is left alone (UnsafePathError).
    """
    try:
        dir_fd = _open_folder(Path(folder), None if root is None else Path(root), create=False)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    removed = 0
    try:
        names = [e.name for e in os.scandir(dir_fd) if _TEMP_NAME.fullmatch(e.name)]
        for name in names:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError:  # a link with our name (not ours), or gone meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                same = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISREG(same.st_mode) and same.st_ino == os.fstat(fd).st_ino:
                    os.unlink(name, dir_fd=dir_fd)
                    removed += 1
            except OSError:  # locked by a live writer, or gone meanwhile
                pass
            finally:
                os.close(fd)
    finally:
        os.close(dir_fd)
    return removed


def visible_files(folder: str | Path) -> list[Path]:
    """Every file below ``folder``, sorted: hidden files and folders skipped, and no symbolic
    link to a folder followed (a link loop would list the same files over and over)."""
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # links to folders are not walked
        found += [Path(top, name) for name in files if not name.startswith(".")]
    return sorted(found)
