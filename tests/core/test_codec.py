"""The strict YAML codec: round-trips, refusals, no implicit typing surprises."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.core.yaml import codec

keys = st.text(min_size=1, max_size=12)
scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=40)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=20)
documents = st.dictionaries(keys, values, min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(documents)
def test_dump_load_round_trip_is_identity_and_byte_stable(doc):
    data = codec.dump(doc)
    back = codec.load(data)
    assert back == doc
    assert codec.dump(back) == data


@pytest.mark.parametrize("text,expected", [
    ("a: NO", "NO"), ("a: yes", "yes"), ("a: off", "off"), ("a: 1.10", "1.10"), ("a: 017", "017"),
    ("a: 0x1F", "0x1F"), ("a: 2024-05-01", "2024-05-01"), ("a: 2024-05-01T10:20:30Z", "2024-05-01T10:20:30Z"),
    ("a: 1:20", "1:20"), ("a: .inf", ".inf"), ("a: 1_000", "1_000"),
])
def test_no_implicit_typing_surprises(text, expected):
    assert codec.load(text.encode())["a"] == expected


@pytest.mark.parametrize("text,value", [("a: true", True), ("a: false", False), ("a: null", None), ("a: ~", None),
                                        ("a: 12", 12), ("a: -3", -3), ("a: !!float 1.5", 1.5)])
def test_json_types_still_work(text, value):
    assert codec.load(text.encode())["a"] == value


@pytest.mark.parametrize("data,needle", [
    (b"a: &x [1]\nb: *x\n", "alias"),
    (b"a: 1\na: 2\n", "duplicate key"),
    (b"a: !!python/object/apply:os.system ['echo hi']\n", "not allowed"),
    (b"<<: {a: 1}\n", "merge"),
    (b"a: 1\n---\nb: 2\n", "single document"),
    (b"- 1\n- 2\n", "mapping"),
    (b"\xff\xfeb: 1\n", "UTF-8"),
    (b"a: \x00\n", "NUL"),
    (b"", "empty"),
    (b"a: " + b"[" * 40 + b"]" * 40 + b"\n", "nested"),
    (b"a: " + b"x" * (codec.MAX_FILE_BYTES + 10), "cap"),
    (b"a: !!float .nan\n", "non-finite"),
    (b"? [1, 2]\n: x\n", "string"),
])
def test_refusals_say_what_is_wrong(data, needle):
    with pytest.raises(codec.CodecError) as exc:
        codec.load(data)
    assert needle.lower() in str(exc.value).lower()


def test_billion_laughs_is_refused_quickly():
    lines = ["a0: &a0 ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    for i in range(1, 9):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    with pytest.raises(codec.CodecError):
        codec.load("\n".join(lines).encode())


def test_dump_quotes_strings_and_keeps_keys_readable():
    out = codec.dump({"kind": "say", "body": {"text": "NO", "n": 1, "Weird Key": "y"}}).decode()
    assert "kind: 'say'" in out
    assert "text: 'NO'" in out
    assert "'Weird Key': 'y'" in out
