"""File names the service makes: numbered variants ("talk (2).txt") and the file system's length
limit on a name, which the service checks itself so that a name too long fails with a reason
instead of an ENAMETOOLONG deep in a write."""

from __future__ import annotations

import os
from pathlib import Path

# Most Linux file systems (ext4, XFS, Btrfs, ZFS, tmpfs) allow 255 bytes in one name; used where
# the file system cannot be asked.
NAME_MAX_BYTES = 255
# How much of a long name a message shows, from its start and from its end.
SHOWN_HEAD_CHARS = 40
SHOWN_TAIL_CHARS = 20


def numbered(name: str, number: int) -> str:
    """The name for number: itself for 1, then "talk (2).txt", "talk (3).txt", ...
    (the number goes before the last extension)."""
    if number == 1:
        return name
    path = Path(name)
    return f"{path.stem} ({number}){path.suffix}"


def number_of(name: str, plain: str) -> int | None:
    """Which numbered(plain, n) name is: n, or None when it is none of them."""
    if name == plain:
        return 1
    path = Path(plain)
    head, tail = f"{path.stem} (", f"){path.suffix}"
    if name.startswith(head) and name.endswith(tail):
        digits = name[len(head) : len(name) - len(tail)]
        if digits.isdigit() and digits[0] != "0" and int(digits) >= 2:
            return int(digits)
    return None


def name_bytes(name: str) -> int:
    return len(os.fsencode(name))


def name_max(where: int | str | os.PathLike[str]) -> int:
    """The longest name, in bytes, the file system of a folder (a descriptor, or a path: the
    nearest folder of it that exists) allows."""
    try:
        if isinstance(where, int):
            limit = os.fpathconf(where, "PC_NAME_MAX")
        else:
            folder = Path(os.path.abspath(where))
            while not folder.is_dir() and folder != folder.parent:
                folder = folder.parent
            limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX_BYTES
    return limit if limit > 0 else NAME_MAX_BYTES


def numbered_within(name: str, number: int, limit: int) -> str:
    """numbered(name, number), its stem cut (whole characters) where needed to take at most
    limit bytes; the number and the extension stay."""
    path = Path(name)
    stem = path.stem
    while stem and name_bytes(numbered(stem + path.suffix, number)) > limit:
        stem = stem[:-1]
    return numbered(stem + path.suffix, number) if stem else numbered(name, number)


def printable(path: str) -> str:
    """A name or path with the bytes that are not UTF-8 written \\xNN: safe in logs and text."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def shown(name: str) -> str:
    """A name as a message shows it: printable, a long one cut in the middle."""
    text = printable(name)
    if len(text) <= SHOWN_HEAD_CHARS + SHOWN_TAIL_CHARS + 1:
        return text
    return f"{text[:SHOWN_HEAD_CHARS]}…{text[-SHOWN_TAIL_CHARS:]}"
