"""The workspace's ``.handoffs/config.yaml``: its bytes to a mapping, wherever they were read from
(the work tree, or a revision's blobs).  Pure: the caller reads the bytes."""
from __future__ import annotations

from typing import Any

from handoff.core.yaml import codec
from handoff.errors import HandoffError

CONFIG_PATH = ".handoffs/config.yaml"


def parse_config(data: bytes | None) -> dict[str, Any]:
    """The config's mapping (``{}`` when there is no file: ``None``); bytes that are not strict YAML are
    refused as ``malformed``."""
    if data is None:
        return {}
    try:
        return codec.load(data)
    except codec.CodecError as exc:
        raise HandoffError("malformed", f"{CONFIG_PATH}: {exc}", hint=f"fix the YAML in {CONFIG_PATH}") from None


def parse_config_or_empty(data: bytes | None) -> dict[str, Any]:
    """``parse_config``, where unreadable bytes count as no config (for reports that flag them elsewhere)."""
    try:
        return parse_config(data)
    except HandoffError:
        return {}


COMMIT_MODES = ("auto", "batch", "off")
_COMMIT_WORDS = {"auto": "auto", "true": "auto", "on": "auto", "yes": "auto", "batch": "batch",
                 "off": "off", "false": "off", "no": "off"}
BATCH_WINDOW_MS = 2000  # batch mode's default window
MAX_BATCH_WINDOW_MS = 3600 * 1000


def commit_word(value: Any) -> str | None:
    """``auto``, ``batch`` or ``off`` for a config or environment value (``None``: not one of them)."""
    if isinstance(value, bool):
        return "auto" if value else "off"
    return _COMMIT_WORDS.get(str(value).strip().lower())


def commit_mode(config: dict[str, Any], override: str | None = None) -> str:
    """How writes commit: ``override`` (``HANDOFF_COMMIT``) when it names a mode, else the config's
    ``commit`` (anything unrecognised commits at once, as ``commit: auto`` always has)."""
    chosen = commit_word(override) if override else None
    return chosen or commit_word(config.get("commit", "auto")) or "auto"


def batch_settings(config: dict[str, Any]) -> tuple[int, bool, list[str]]:
    """``batch: {window: 2s, background: true}`` -> (window in ms, start a background flusher, problems).

    The window is seconds (a number) or a duration with s/m (``500ms`` is ``0.5s``), 0 to 1 h; a value
    that is not one falls back to the default and is named in ``problems`` (``doctor`` reports them)."""
    from handoff.core.arguments import duration_ms
    section = config.get("batch")
    problems: list[str] = []
    if section is None:
        return BATCH_WINDOW_MS, True, problems
    if not isinstance(section, dict):
        return BATCH_WINDOW_MS, True, [f"batch: {section!r} is not a mapping"]
    window: float | None = BATCH_WINDOW_MS
    raw = section.get("window", "2s")
    if isinstance(raw, bool):
        window = None
    elif isinstance(raw, (int, float)):
        window = raw * 1000
    elif isinstance(raw, str):
        text = raw.strip().lower()
        if text.endswith("ms"):  # (milliseconds: the number of seconds it would be, divided back)
            secs = duration_ms(text[:-2], "s", fractions=True)
            window = None if secs is None else secs / 1000
        else:
            window = duration_ms(text, "sm", fractions=True)
    else:
        window = None
    if window is None or not 0 <= window <= MAX_BATCH_WINDOW_MS:
        problems.append(f"batch.window {raw!r} is not a duration from 0 to 1h (e.g. 2s)")
        window = BATCH_WINDOW_MS
    background = section.get("background", True)
    if not isinstance(background, bool):
        problems.append(f"batch.background {background!r} is not true or false")
        background = True
    return int(window), background, problems
