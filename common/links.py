"""Link placeholders: a symbolic link stored as a small text file naming its target.

Git writes a symlink this way where it cannot make one (``core.symlinks=false``, some copies
and archives), and ``colorize-v2`` arrives so for its colorize-v1 photos. Reading such a
file as an image fails; following it, like the link it stands for, works.
"""

from pathlib import Path

MAX_PLACEHOLDER_BYTES = 1024  # a relative path; any real image is larger


def _named_target(path: Path) -> Path | None:
    """The existing file that ``path``'s text names, when ``path`` is a placeholder."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_PLACEHOLDER_BYTES:
            return None
        text = path.read_bytes().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text or "\n" in text or "\0" in text or Path(text).is_absolute():
        return None
    target = path.parent / text
    return target if target.is_file() else None


def follow_link_file(path: str | Path) -> Path:
    """The file a link placeholder at ``path`` names, or ``path`` itself when it is not one.

    One level only: a placeholder that names another placeholder (or itself) is not followed,
    so there are no loops."""
    path = Path(path)
    target = _named_target(path)
    if target is None or _named_target(target) is not None:
        return path
    return target
