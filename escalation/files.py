"""Reading the project's TOML files (policies, roster, delivery settings): every way a file cannot be read
becomes one line naming the file and where in it, never a traceback and never the file's content. Writing the
files that hold customer data (the outbox, the events file, dead letters): readable by their owner alone."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any, TextIO

PRIVATE_MODE = 0o600


class FileProblem(ValueError):
    """A settings or data file that cannot be read, is not UTF-8 or is not valid TOML."""


def read_toml(path: Path, label: str) -> dict[str, Any]:
    """The file's table. Raises FileProblem starting with `label` (e.g. 'policy file gold.toml'): cannot read
    (with the system's reason), not UTF-8 (with the line and the byte), or not valid TOML (the parser's reason
    with line and column)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise FileProblem(f"{label}: cannot read: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise FileProblem(
            f"{label}: line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise FileProblem(f"{label}: not valid TOML: {err}") from None


def append_private(path: Path) -> TextIO:
    """`path` opened for appending text, created readable and writable by its owner alone (0600); a file that
    others could read (written by an earlier version) is made 0600 first. Its folder is created when missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
    try:
        if os.name != "nt" and stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, PRIVATE_MODE)
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise
