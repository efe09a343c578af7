"""Reading a small file an operator writes (agents, users, hooks, secrets)
whole, with one bound and one clear error.

For files read at start or on SIGHUP, never for data that grows (the report,
the queue log, the journal): those are read in pieces by their owners.
"""

from __future__ import annotations


class FileReadError(ValueError):
    """The file cannot be used.  ``str()`` is ``"<path>: <why>"``, so a caller
    puts its option in front (``--agents /etc/x.csv: not UTF-8 text (byte 7)``)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def read_bounded(path: str, limit: int) -> str:
    """The whole file as text: at most ``limit`` bytes of UTF-8 (a leading BOM,
    as some Windows editors write, is dropped).

    ``FileReadError`` when it cannot be opened or read (missing, a directory,
    no permission), is larger than ``limit``, or is not UTF-8.  Never reads
    more than ``limit + 1`` bytes, whatever the file's size.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise FileReadError(path, f"cannot read ({e.strerror or e})") from None
    if len(data) > limit:
        raise FileReadError(path, f"larger than {_size(limit)}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FileReadError(path, f"not UTF-8 text (byte {e.start})") from None


def _size(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} bytes"
