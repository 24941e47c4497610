"""Server paths a client may name: only inside the allowed roots, after following symlinks."""

from __future__ import annotations

from pathlib import Path


class PathNotAllowed(Exception):
    pass


def resolve_allowed(raw: str, roots: list[Path]) -> Path:
    """The resolved path, if it lies inside one of the roots (.. and symlinks cannot escape)."""
    try:
        path = Path(raw).expanduser().resolve()
    except RuntimeError as exc:  # "~name" where no user has that name: no such path
        raise ValueError(f"no home folder for {raw.split('/')[0]}") from exc
    for root in roots:
        if path.is_relative_to(root.resolve()):
            return path
    raise PathNotAllowed(f"{raw} is outside the allowed folders")
