"""Dummy media files and refusal lookups shared by the corpus reader tests."""

from __future__ import annotations

from pathlib import Path


def touch(path: Path, data: bytes = b"media") -> Path:
    """A dummy media file; readers never decode, so any bytes do (b"" makes an empty file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def reasons(listing) -> dict[str, str]:
    return {refusal.item: refusal.reason for refusal in listing.refused}
