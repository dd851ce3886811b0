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
