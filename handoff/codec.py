"""Strict YAML for event files: one document, no surprises, canonical output.

Reading refuses aliases/anchors reuse, merge keys, duplicate keys, tags other
than the plain JSON types, non-UTF-8 bytes, extra documents and oversized
files.  Implicit typing is cut down to JSON's: ``true``/``false``, ``null``,
decimal integers.  ``NO``, ``yes``, ``1.10``, ``017`` and ``2024-05-01`` all
stay strings.  Floats survive only with an explicit ``!!float`` tag, which is
what the dumper writes, so a float in a body round-trips exactly.

Writing quotes every string, sorts keys, never folds lines and is verified by
re-parsing (the round-trip guard).
"""
from __future__ import annotations

import math
import re

import yaml

from . import canon

MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 32

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class CodecError(ValueError):
    """The bytes are not a strict, single-document YAML mapping."""


def _strict_resolvers() -> dict:
    # Only JSON-like implicit types: everything else is a string.
    resolvers: dict = {}

    def add(tag, regexp, first):
        for ch in first:
            resolvers.setdefault(ch, []).append((tag, regexp))

    add("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), "tf")
    add("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|)$"), ["~", "n", ""])
    add("tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"), "-0123456789")
    return resolvers


_ALLOWED_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:float", "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


class StrictLoader(_Loader):  # type: ignore[misc, valid-type]
    yaml_implicit_resolvers = _strict_resolvers()

    def construct_object(self, node, deep=False):
        if node in self.constructed_objects or node in self.recursive_objects:
            raise CodecError("aliases and anchors are not allowed")
        if node.tag not in _ALLOWED_TAGS:
            raise CodecError(f"tag {node.tag!r} is not allowed")
        return super().construct_object(node, deep=deep)

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            raise CodecError("expected a mapping")
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or (key_node.value == "<<" and not key_node.style):
                raise CodecError("merge keys (<<) are not allowed")
            if not isinstance(key_node, yaml.ScalarNode):
                raise CodecError("mapping keys must be plain strings")
            if key_node.value in seen:
                raise CodecError(f"duplicate key {key_node.value!r}")
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=True)

    def construct_yaml_float(self, node):
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise CodecError("non-finite floats are not allowed")
        return value


StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)


def _check_shape(value, depth=0):
    if depth > MAX_DEPTH:
        raise CodecError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise CodecError(f"mapping key {k!r} is not a string")
            _check_shape(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_shape(v, depth + 1)


def load(data: bytes, *, fast: bool = True) -> dict:
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
    return _strict_load(text)


def _strict_load(text: str) -> dict:
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise CodecError("empty document")
        value = loader.construct_document(node)
    except CodecError:
        raise
    except yaml.YAMLError as exc:
        raise CodecError(" ".join(str(exc).split())) from None
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        raise CodecError(f"unreadable: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(value, dict):
        raise CodecError(f"top level must be a mapping, got {type(value).__name__}")
    _check_shape(value)
    return value


class CanonicalDumper(_Dumper):  # type: ignore[misc, valid-type]
    yaml_implicit_resolvers = _strict_resolvers()


def _repr_str(dumper, value: str):
    style = "|" if "\n" in value else "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _repr_float(dumper, value: float):
    if not math.isfinite(value):
        raise CodecError("non-finite floats cannot be stored")
    return dumper.represent_scalar("tag:yaml.org,2002:float", repr(value))


_PLAIN_KEY = re.compile(r"^[a-z_][a-z0-9_]*$")
_AMBIGUOUS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _repr_dict(dumper, value: dict):
    # Keys that are plain identifiers stay unquoted so reviewers read ``kind: 'say'``.
    items = []
    for k in sorted(value):
        if isinstance(k, str) and _PLAIN_KEY.match(k) and k not in _AMBIGUOUS:
            key_node = yaml.ScalarNode("tag:yaml.org,2002:str", k, style=None)
        else:
            key_node = dumper.represent_data(k)
        items.append((key_node, dumper.represent_data(value[k])))
    return yaml.MappingNode("tag:yaml.org,2002:map", items, flow_style=False if items else True)


CanonicalDumper.add_representer(str, _repr_str)
CanonicalDumper.add_representer(dict, _repr_dict)
CanonicalDumper.add_representer(float, _repr_float)


def dump(value: dict) -> bytes:
    """Canonical bytes for an event mapping, checked by parsing them back."""
    text = yaml.dump(value, Dumper=CanonicalDumper, sort_keys=True, allow_unicode=True,
                     default_flow_style=False, width=1 << 30, indent=2, explicit_start=False)
    data = text.encode("utf-8")
    if load(data, fast=False) != value:  # the strict loader, not the fast path, is the round-trip guard
        raise CodecError("canonical dump did not round-trip")
    return data
