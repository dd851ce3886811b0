"""The limits every event file is read under, and the error a file that breaks them raises."""
from __future__ import annotations

MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 32


class CodecError(ValueError):
    """The bytes are not a strict, single-document YAML mapping."""
