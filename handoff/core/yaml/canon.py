"""A fast reader for the canonical YAML that ``codec.dump`` writes (pure).

Parsing is the cost of every cold read: PyYAML, even with libyaml, spends
most of its time building nodes and calling Python constructors.  Event
files are almost always exactly what our own dumper wrote: sorted keys,
2-space block indentation, every string single-quoted or a ``|`` literal
block, JSON-only plain scalars, floats tagged ``!!float``.  This module reads
that narrow dialect line by line, about ten times faster.

It is only a shortcut: ``load`` returns ``None`` for anything outside the
dialect (a tab, a double-quoted string, a comment after a value, an
indentation indicator, an unusual character, a duplicate key...; whole-line
comments, as in a hand-edited config, are read past), and the caller then uses the
strict loader, which gives the same value or the precise error.  Whatever
this reader accepts, it must read exactly as the strict loader would; the
differential tests in ``tests/test_canon.py`` hold it to that.
"""
from __future__ import annotations

import re
import sys
from typing import Any

# Characters the dialect may contain: printable, no tab/CR/NEL/LS/PS/BOM, nothing outside the BMP.
_ASCII_BAD = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_SAFE_TEXT_SRC = "[\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd]*\\Z"
_safe_text: list[re.Pattern[str]] = []  # compiled on first use: the wide character class costs milliseconds to compile
# One line: indentation, an optional "- ", an optional "key:" (plain or single-quoted), then either a
# whole single-quoted scalar (its content and the closing quote as a marker) or the rest of the line.
# (Quoted text is matched as "runs between doubled quotes", not one character at a time: the same
# language, and findall, the bulk of a cold read, takes ~40 % less time.)
_LINE = re.compile(r"( *)(- )?(?:([a-z_][a-z0-9_]*|'[^'\n]*(?:''[^'\n]*)*'):(?: |(?=\n)))?"
                   r"(?:'([^'\n]*(?:''[^'\n]*)*)(')(?=\n)|(.*))\n")
_QUOTED = re.compile(r"'([^'\n]*(?:''[^'\n]*)*)'\Z")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"!!float (-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?)\Z")
_RESERVED_KEYS = frozenset(("true", "false", "null"))
_CONSTANTS = {"true": True, "false": False, "null": None}
_intern = sys.intern
# Values that repeat across events (kinds, channels, peers, ids of threads and work): one shared string
# each, so a hundred thousand parsed events hold one copy, not one per event.
_SHARED_VALUES = frozenset(("kind", "channel", "surface", "from", "to", "workspace_id", "protocol", "session_id",
                            "thread_id", "direct_id", "work_id", "intent", "status", "state", "agent",
                            "target_kind", "reason_code"))


class _Fallback(Exception):
    """The text is outside the canonical dialect: let the strict loader decide."""


def load(text: str, max_depth: int = 32) -> dict[str, Any] | None:
    """The mapping in ``text`` if it is canonical, else None (never a different value).

    Nesting deeper than ``max_depth`` levels also returns None (the strict loader reports it).
    """
    if not text.endswith("\n") or not _safe(text):
        return None
    if "#" in text:
        uncommented = _without_comment_lines(text)
        if uncommented is None:
            return None
        text = uncommented
    toks = _LINE.findall(text)
    if toks and toks[-1] == ("", "", "", "", "", "..."):
        toks.pop()  # the document end marker the emitter adds after a keep-chomped (|+) block
    if not toks or toks[0][0] or toks[0][1] or not toks[0][2]:
        return None
    try:
        value, i = _mapping(_Doc(text, toks, max_depth), 0, 0, 0)
    except _Fallback:
        return None
    if i != len(toks):
        return None
    return value


def _without_comment_lines(text: str) -> str | None:
    """``text`` less its whole-line comments (a hand-written config has them), or None if a ``|`` block
    could hold a line that only looks like one.  A comment after a value is left: it falls back."""
    kept = "".join(line for line in text.splitlines(keepends=True) if not line.lstrip(" ").startswith("#"))
    return None if "|" in kept else kept  # (a block's "|" sits on a line that is kept)


def _safe(text: str) -> bool:
    if text.isascii():
        return _ASCII_BAD.search(text) is None
    if not _safe_text:
        _safe_text.append(re.compile(_SAFE_TEXT_SRC))
    return _safe_text[0].match(text) is not None


class _Doc:
    __slots__ = ("_lines", "max_depth", "text", "toks")

    def __init__(self, text: str, toks: list[Any], max_depth: int):
        self.text = text
        self.toks = toks
        self.max_depth = max_depth
        self._lines: list[str] | None = None

    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.split("\n")
        return self._lines


def _mapping(doc: _Doc, i: int, ind: int, depth: int) -> tuple[dict[str, Any], int]:
    if depth >= doc.max_depth:
        raise _Fallback  # its values would sit deeper than allowed
    out: dict[str, Any] = {}
    toks = doc.toks
    n = len(toks)
    while i < n:
        sp, dash, raw, qval, quote, rest = toks[i]
        cur = len(sp)
        if cur < ind:
            break
        if cur > ind:
            raise _Fallback
        if not raw:
            if dash:
                break  # an indentless sequence item of an enclosing mapping ends this one
            raise _Fallback
        if dash:
            raise _Fallback
        if raw[0] == "'":
            key = raw[1:-1].replace("''", "'")
            if key == "<<":
                raise _Fallback  # the strict loader refuses merge keys, quoted or not
        elif raw in _RESERVED_KEYS:
            raise _Fallback
        else:
            key = raw
        if key in out:
            raise _Fallback
        i += 1
        if quote:
            value = qval.replace("''", "'")
        elif not rest:  # a nested block collection on the next lines
            if i >= n:
                raise _Fallback
            nsp, ndash, nraw = toks[i][:3]
            nind = len(nsp)
            if nind == ind and ndash:
                value, i = _sequence(doc, i, ind, depth + 1)
            elif nind == ind + 2 and not ndash and nraw:
                value, i = _mapping(doc, i, ind + 2, depth + 1)
            else:
                raise _Fallback
        else:
            value, i = _scalar(rest, doc, i, ind)
        if key in _SHARED_VALUES and type(value) is str and len(value) < 200:
            value = _intern(value)
        out[_intern(key)] = value
    return out, i


def _sequence(doc: _Doc, i: int, ind: int, depth: int) -> tuple[list[Any], int]:
    if depth >= doc.max_depth:
        raise _Fallback
    out: list[Any] = []
    value: Any
    toks = doc.toks
    n = len(toks)
    while i < n:
        sp, dash, raw, qval, quote, rest = toks[i]
        cur = len(sp)
        if cur < ind:
            break
        if cur > ind:
            raise _Fallback
        if not dash:
            break  # back to the enclosing mapping's next key
        if raw:
            # "- key: value": a mapping whose first entry sits on the dash line, two columns in.
            toks[i] = (" " * (ind + 2), "", raw, qval, quote, rest)
            value, i = _mapping(doc, i, ind + 2, depth + 1)
        elif quote:
            value = qval.replace("''", "'")
            i += 1
        elif rest.startswith("- "):
            # "- - x": a nested sequence, read as if the first dash were a space.
            m = _LINE.match(" " * (ind + 2) + rest + "\n")
            assert m is not None  # (any line matches: every group is optional)
            toks[i] = m.groups(default="")
            value, i = _sequence(doc, i, ind + 2, depth + 1)
        elif not rest or rest[0] == " ":
            raise _Fallback
        else:
            value, i = _scalar(rest, doc, i + 1, ind)
        out.append(value)
    return out, i


def _scalar(rest: str, doc: _Doc, i: int, owner: int) -> tuple[Any, int]:
    """One scalar written after ``key: `` or ``- ``; ``i`` is the next line (block scalars read on)."""
    c = rest[0]
    if c == "'":
        m = _QUOTED.match(rest)
        if m is None:
            raise _Fallback
        return m.group(1).replace("''", "'"), i
    if c == "|":
        return _literal(rest, doc, i, owner)
    if rest in _CONSTANTS:
        return _CONSTANTS[rest], i
    if _INT.match(rest):
        return int(rest), i
    if rest == "{}":
        return {}, i
    if rest == "[]":
        return [], i
    m = _FLOAT.match(rest)
    if m is not None:
        value = float(m.group(1))
        if value - value == 0.0:  # finite (an overflow to inf is the strict loader's error to report)
            return value, i
    raise _Fallback


def _literal(header: str, doc: _Doc, i: int, owner: int) -> tuple[str, int]:
    if header not in ("|", "|-", "|+"):
        raise _Fallback  # indentation indicators and comments go to the strict loader
    ind = owner + 2
    prefix = " " * ind
    lines = doc.lines()
    n = len(doc.toks)
    if i >= n:
        raise _Fallback
    first = lines[i]
    if not first.startswith(prefix) or first[ind:ind + 1] in ("", " "):
        raise _Fallback
    body: list[str] = []
    while i < n:
        line = lines[i]
        if line == "":
            body.append("")
        elif line.startswith(prefix):
            part = line[ind:]
            if not part.strip(" "):
                raise _Fallback  # whitespace-only lines: leave the fine print to the strict loader
            body.append(part)
        elif line.strip(" "):
            break  # a less indented line: the block is over
        else:
            raise _Fallback
        i += 1
    trailing = 0
    while body and body[-1] == "":
        body.pop()
        trailing += 1
    text = "\n".join(body)
    if header == "|":
        text += "\n"
    elif header == "|+":
        text += "\n" * (trailing + 1)
    return text, i
