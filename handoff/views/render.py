"""Printing results: JSON, JSONL, YAML for machines; readable, escape-safe text for people."""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

FORMATS = ("human", "json", "jsonl", "yaml")
# C0/C1 controls (ESC, CSI, OSC, BEL, backspace, CR...) and the bidirectional overrides used to make
# text read differently from what it is ("Trojan Source").
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069]")
_C1 = re.compile(r"[\x80-\x9f]")


def safe(text: Any) -> str:
    """Neutralise terminal escape sequences and other control characters in untrusted text."""
    s = text if isinstance(text, str) else str(text)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)


def one_line(text: Any, width: int = 100) -> str:
    s = " ".join(safe("" if text is None else text).split())
    return s if len(s) <= width else s[: width - 1] + "…"


def to_json(data: Any, **kw: Any) -> str:
    """JSON with non-ASCII kept readable, except C1 controls (a raw U+009B is a CSI to some terminals)."""
    kw.setdefault("indent", 2)
    text = json.dumps(data, ensure_ascii=False, sort_keys=False, **kw)
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def emit(data: Any, fmt: str, human: Callable[[Any], str] | None = None, *, stream=None) -> None:
    out = stream or sys.stdout
    if fmt == "json":
        out.write(to_json(data) + "\n")
    elif fmt == "jsonl":
        items = data if isinstance(data, list) else _list_in(data)
        for item in items:
            out.write(to_json(item, indent=None, separators=(",", ":")) + "\n")
    elif fmt == "yaml":
        import yaml
        out.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1 << 20))
    else:
        text = human(data) if human else _generic(data)
        if text:
            out.write(text if text.endswith("\n") else text + "\n")
    out.flush()


def _list_in(data: Any) -> list:
    """JSONL of an object: its single list field if it has one, else the object itself."""
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return [data]


def _generic(data: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(data, dict):
        lines = []
        for k, v in data.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{safe(k)}:")
                lines.append(_generic(v, indent + 1))
            else:
                lines.append(f"{pad}{safe(k)}: {_scalar(v)}")
        return "\n".join(lines)
    if isinstance(data, list):
        return "\n".join(f"{pad}- " + _generic(v, indent + 1).lstrip() if isinstance(v, (dict, list))
                         else f"{pad}- {_scalar(v)}" for v in data)
    return pad + _scalar(data)


def _scalar(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return one_line(v, 200)


RESPONSES = ("pending", "accepted", "rejected")


def state_words(status: str | None, state: str | None) -> str:
    """A handoff's two views in one phrase, the same in every human output: its response (Hivemind:
    pending, accepted, rejected; ``unanswered`` when the work ended before anyone answered) and its
    work unit's state (AGH: submitted, working, needs_input, completed, failed, canceled)."""
    return f"{status if status in RESPONSES else 'unanswered'} · {state or '-'}"


def table(rows: list[dict], cols: list[str], empty: str = "(none)") -> str:
    if not rows:
        return empty
    cells = [[one_line(r.get(c) if r.get(c) is not None else "-", 60) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    head = "  ".join(c.upper().ljust(w) for c, w in zip(cols, widths))
    body = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([head, *body])
