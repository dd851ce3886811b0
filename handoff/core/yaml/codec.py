"""Strict YAML for event files: one document, no surprises, canonical output.

Reading refuses aliases/anchors reuse, merge keys, duplicate keys, tags other
than the plain JSON types, non-UTF-8 bytes, extra documents and oversized
files.  Implicit typing is cut down to JSON's: ``true``/``false``, ``null``,
decimal integers.  ``NO``, ``yes``, ``1.10``, ``017`` and ``2024-05-01`` all
stay strings.  Floats survive only with an explicit ``!!float`` tag, which is
what the dumper writes, so a float in a body round-trips exactly.

Writing quotes every string, sorts keys, never folds lines and is verified by
re-parsing (the round-trip guard).

Our own canonical files are read by ``canon``; PyYAML (``strictyaml``, the
strict loader and the canonical dumper) is imported only for anything else
and for writing, so a read command does not pay for importing it.
"""
from __future__ import annotations

from typing import Any

from handoff.core.yaml import canon
from handoff.core.yaml.bounds import MAX_DEPTH, MAX_FILE_BYTES, CodecError

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "CodecError", "dump", "load"]



def load(data: bytes, *, fast: bool = True) -> dict[str, Any]:
    """Parse one event file strictly; raise CodecError saying what is wrong.

    ``fast`` lets ``canon`` read our own canonical output (the same value, ~10x sooner).
    """
    if len(data) > MAX_FILE_BYTES:
        raise CodecError(f"file is {len(data)} bytes, over the {MAX_FILE_BYTES} byte cap")
    if b"\x00" in data:
        raise CodecError("file contains NUL bytes (binary?)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(f"not UTF-8: {exc}") from None
    value = canon.load(text, MAX_DEPTH) if fast else None  # anything outside the dialect goes the strict way
    if value is not None:
        return value  # (canon only returns string keys, nested at most MAX_DEPTH: what _check_shape checks)
    from handoff.core.yaml.strict import strict_load
    return strict_load(text)


def dump(value: dict[str, Any]) -> bytes:
    """Canonical bytes for an event mapping, checked by parsing them back."""
    from handoff.core.yaml.strict import canonical_dump
    data = canonical_dump(value).encode("utf-8")
    if load(data, fast=False) != value:  # the strict loader, not the fast path, is the round-trip guard
        raise CodecError("canonical dump did not round-trip")
    return data
