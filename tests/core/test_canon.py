"""The fast canonical reader must read exactly what the strict loader reads, or step aside."""
from __future__ import annotations

import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handoff.core.yaml import canon, codec
from handoff.core.yaml import strict as strictyaml

EXAMPLES = 3000 if os.environ.get("HANDOFF_HEAVY") else 150


def tagged(value):
    """A type-exact view of a value (1 != True != 1.0, -0.0 != 0.0)."""
    if isinstance(value, dict):
        return ("d", sorted((k, tagged(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("l", [tagged(v) for v in value])
    if isinstance(value, float):
        return ("f", repr(value))
    return (type(value).__name__, value)


def strict(text: str):
    try:
        loader = strictyaml.StrictLoader(text)
        try:
            value = loader.get_single_node()
            return ("ok", tagged(loader.construct_document(value))) if value is not None else ("err",)
        finally:
            loader.dispose()
    except Exception:
        return ("err",)


def agree(text: str) -> bool:
    fast = canon.load(text)
    if fast is None:
        return True
    return strict(text) == ("ok", tagged(fast))


keys = st.one_of(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), st.text(max_size=6),
                 st.sampled_from(["true", "null", "on", "no", "y", "''", "it's", "a: b", "- x", "...", "<<"]))
texts = st.one_of(st.text(max_size=30),
                  st.text(alphabet=st.sampled_from(list("ab '\n\t-:#|>\"\\.x") + ["\u2028", "é", "\x85"]),
                          max_size=20))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), texts,
                    st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(keys, inner, max_size=4)), max_leaves=12)
documents = st.dictionaries(keys, values, min_size=1, max_size=6)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_canonical_dumps_read_back_identically(doc):
    try:
        text = codec.dump(doc).decode()
    except codec.CodecError:
        return  # the dumper refuses it (e.g. a '<<' key): nothing is ever written
    fast = canon.load(text)
    if fast is not None:
        assert tagged(fast) == tagged(doc)
    assert agree(text)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(
    [" ", "", "\n", "'", "-", ": ", "  ", "|", "|+", "#", "\t", "...", "- ", "&a ", "*a", "!!str ", "0", "~",
     "# c\n", "\n  # c", " #"])),
    min_size=1, max_size=3))
def test_mutated_documents_never_read_differently(doc, edits):
    try:
        text = codec.dump(doc).decode()
    except codec.CodecError:
        text = "a: '<<'\n"
    assert agree("'<<': 1\n")
    for pos, piece in edits:
        pos %= len(text) + 1
        cut = 1 if piece == "" else 0
        text = text[:pos] + piece + text[pos + cut:]
    assert agree(text)


def test_typical_event_takes_the_fast_path():
    ev = {"id": "msg_01jv8zk3abcdefghjkmnpqrstv", "kind": "say", "body": {"text": "line one\nline two\n",
          "context": {"files_changed": ["a.py", "b.py"], "decisions": [{"what": "x", "why": "it's"}]}},
          "after": ["msg_01jv8zk3abcdefghjkmnpqrstw"], "n": 3, "f": 0.25, "ok": True, "none": None, "e": {}}
    text = codec.dump(ev).decode()
    assert canon.load(text) == ev
    assert not math.isnan(canon.load(text)["f"])


def test_outside_the_dialect_falls_back():
    for text in ["a: 'x' # c\n", "a: \"x\"\n", "a: |2-\n   x\n", "a: x\n", "a:\tb\n", "a: 'x'", "- 1\n",
                 "a: 'x'\na: 'y'\n", "true: 1\n", "a: &x 1\n", "a: 'x'\n---\nb: 1\n", "a: 01\n", "a: 1.5\n"]:
        assert canon.load(text) is None, text


def test_whole_line_comments_are_read_past_like_the_strict_loader_does():
    from pathlib import Path
    template = (Path(codec.__file__).parents[2] / "template" / "config.yaml").read_text().replace("{workspace_id}", "w")
    assert canon.load(template) is not None  # (a read command parses the config without importing PyYAML)
    assert agree(template)
    doc = {"a": {"b": ["x", {"c": "it's"}], "d": 1}, "e": "#not a comment"}
    lines = codec.dump(doc).decode().splitlines(keepends=True)
    for i in range(len(lines) + 1):
        for comment in ("# note\n", "    # indented note\n", "#\n"):
            text = "".join(lines[:i] + [comment] + lines[i:])
            assert tagged(canon.load(text)) == tagged(doc), text
            assert agree(text)
    assert canon.load("a: |\n  # kept\n") is None  # (in a block it would be content: the strict loader decides)
