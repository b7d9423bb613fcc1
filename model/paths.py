"""Output paths checked before any work starts: a command that will fail to write its result
says so at once, in one line, and not after minutes of work."""

from __future__ import annotations

import os
from pathlib import Path


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names it and says what to do."""


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")


def _check_parent(path: Path, what: str) -> None:
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise OutputPathError(
            f"{what} {str(path)!r} lies under {str(base)!r}, which is a file, not a folder"
        )
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {str(path)!r}: no permission to write in {str(base)!r}")


def writable_file(path, *, what: str = "output", suffix: str | None = None, force: bool = True):
    """``path`` (with ``suffix`` added when it has another) if a file can be written there.

    Refuses a folder, a path under a file, a folder without write permission and, unless
    ``force``, an existing file.
    """
    path = Path(path)
    if suffix and path.suffix != suffix:
        path = path.with_name(path.name + suffix)
    if path.is_dir():
        raise OutputPathError(f"{what} {str(path)!r} is a folder; name a file in it")
    if path.exists():
        if not force:
            raise OutputPathError(
                f"{what} {str(path)!r} exists; choose another name, or add --force to overwrite it"
            )
        if not os.access(path, os.W_OK):
            raise OutputPathError(f"{what} {str(path)!r} exists and cannot be overwritten")
    _check_parent(path, what)
    return path


def writable_dir(path, *, what: str = "output folder") -> Path:
    """``path`` if it is a folder, or can be made one, that files can be written in."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {str(path)!r} is a file, not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputPathError(f"{what} {str(path)!r}: no permission to write in it")
        return path
    _check_parent(path, what)
    return path


def write_atomically(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename: a
    reader sees the old file or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
