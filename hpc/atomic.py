"""Atomic file output: write to a temporary file in the target directory, then rename.

A crash (or SIGKILL) at any point leaves either the old file or no file at the final
path, never a half-written one; Snakemake and resumed runs rely on that.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


class OutputNotWritableError(OSError):
    """The output location cannot be written; message names the path."""


def ensure_writable_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"{directory}: cannot create output directory ({exc.strerror})") from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputNotWritableError(f"{directory}: output directory is not writable")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success rename it onto ``final``.

    On an exception the temporary file is removed and ``final`` is untouched.
    """
    final = Path(final)
    ensure_writable_dir(final.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or ".tmp",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; final files get normal permissions
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(final: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(final)


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)
