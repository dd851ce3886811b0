"""PyYAML set up for ``codec``: the strict loader and the canonical dumper.

Imported only when a file is not in our canonical dialect (``canon`` reads
those) or when an event is written.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import yaml

from handoff.core.yaml.bounds import MAX_DEPTH, CodecError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _strict_resolvers() -> dict[str, Any]:
    # Only JSON-like implicit types: everything else is a string.
    resolvers: dict[str, Any] = {}

    def add(tag: str, regexp: re.Pattern[str], first: Iterable[str]) -> None:
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

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node in self.constructed_objects or node in self.recursive_objects:
            raise CodecError("aliases and anchors are not allowed")
        if node.tag not in _ALLOWED_TAGS:
            raise CodecError(f"tag {node.tag!r} is not allowed")
        return super().construct_object(node, deep=deep)

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> Any:
        if not isinstance(node, yaml.MappingNode):
            raise CodecError("expected a mapping")
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or (key_node.value == "<<" and not key_node.style):
                raise CodecError("merge keys (<<) are not allowed")
            if not isinstance(key_node, yaml.ScalarNode):
                raise CodecError("mapping keys must be plain strings")
            if key_node.value in seen:
                raise CodecError(f"duplicate key {key_node.value!r}")
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=True)

    def construct_yaml_float(self, node: yaml.Node) -> Any:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise CodecError("non-finite floats are not allowed")
        return value


StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)


def _check_shape(value: object, depth: int = 0) -> None:
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


def strict_load(text: str) -> dict[str, Any]:
    """The mapping in ``text`` by the strict rules (``codec``'s docstring), or CodecError saying why not."""
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


def _repr_str(dumper: yaml.BaseDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _repr_float(dumper: yaml.BaseDumper, value: float) -> yaml.ScalarNode:
    if not math.isfinite(value):
        raise CodecError("non-finite floats cannot be stored")
    return dumper.represent_scalar("tag:yaml.org,2002:float", repr(value))


_PLAIN_KEY = re.compile(r"^[a-z_][a-z0-9_]*\Z")
_AMBIGUOUS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _repr_dict(dumper: yaml.BaseDumper, value: dict[str, Any]) -> yaml.MappingNode:
    # Keys that are plain identifiers stay unquoted so reviewers read ``kind: 'say'``.
    items: list[tuple[yaml.Node, yaml.Node]] = []
    key_node: yaml.Node
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


def canonical_dump(value: dict[str, Any]) -> str:
    """The canonical text of an event mapping (``codec.dump`` checks it by parsing it back)."""
    return yaml.dump(value, Dumper=CanonicalDumper, sort_keys=True, allow_unicode=True,
                     default_flow_style=False, width=1 << 30, indent=2, explicit_start=False)
