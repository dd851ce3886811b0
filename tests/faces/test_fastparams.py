"""``fastparams`` patches Typer's private internals; these tests say loudly when Typer's shape changes.

``handoff.faces.cli.fastparams`` swaps ``typer.core._TyperParameter.get_runtime_param`` for one that
coerces plain ``str``/``int``/``bool``/``list[str]`` values without Pydantic (start-up, ~90 ms).  If
Typer renames or reshapes what it relies on, ``install`` either stops doing anything (start-up gets
slow without a word) or, worse, coerces differently.  The first tests pin the shape; the last runs one
command line per case through Typer as shipped and through the patch, in fresh interpreters, and
compares exit codes and output.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys

import pytest
import typer
from conftest import ROOT

FIX = "update handoff/faces/cli/fastparams.py to the new shape (or drop it if Typer no longer needs Pydantic)"


def _changed(what: str) -> str:
    return f"Typer {typer.__version__} changed shape: {what}; fastparams relies on it. {FIX}"


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_typer_private_names_are_there():
    try:
        from typer import _coercion, core
    except ImportError as exc:  # pragma: no cover - only when Typer moves its modules
        pytest.fail(_changed(f"cannot import typer._coercion / typer.core ({exc})"))
    for owner, name in ((_coercion, "RuntimeParam"), (_coercion, "build_runtime_param"),
                        (_coercion, "TypeDescriptor"), (core, "_TyperParameter")):
        assert hasattr(owner, name), _changed(f"{owner.__name__}.{name} is gone")
    assert hasattr(core._TyperParameter, "get_runtime_param"), _changed("_TyperParameter.get_runtime_param is gone")


def test_typer_private_signatures_are_the_ones_fastparams_uses():
    from typer import _coercion, core
    rp = _coercion.RuntimeParam
    assert dataclasses.is_dataclass(rp), _changed("RuntimeParam is no longer a dataclass")
    fields = [f.name for f in dataclasses.fields(rp)]
    assert fields == ["parameter_info", "annotation"], \
        _changed(f"RuntimeParam's fields are {fields}, not [parameter_info, annotation] (PlainRuntimeParam(...) "
                 "builds one with these keywords)")
    assert _params(rp._coerce_value) == ["self", "value", "param", "ctx"], \
        _changed(f"RuntimeParam._coerce_value takes {_params(rp._coerce_value)}")
    assert "_coerce_value" in getattr(rp, "__abstractmethods__", ()), \
        _changed("RuntimeParam._coerce_value is no longer the one method a runtime param implements")
    assert "self._coerce_value(" in inspect.getsource(rp.coerce), \
        _changed("RuntimeParam.coerce no longer calls _coerce_value")
    assert _params(_coercion.build_runtime_param) == ["descriptor"], \
        _changed(f"build_runtime_param takes {_params(_coercion.build_runtime_param)}, not (descriptor)")
    assert _params(core._TyperParameter.get_runtime_param) == ["self"], \
        _changed("_TyperParameter.get_runtime_param takes arguments")
    desc_fields = {f.name for f in dataclasses.fields(_coercion.TypeDescriptor)}
    assert {"annotation", "parameter_info", "file_annotation"} <= desc_fields, \
        _changed(f"TypeDescriptor's fields are {sorted(desc_fields)}")
    assert isinstance(inspect.getattr_static(_coercion.TypeDescriptor, "is_choice"), property), \
        _changed("TypeDescriptor.is_choice is no longer a property")


def test_parameter_objects_carry_what_fastparams_reads():
    """A real option and argument: their cache slot, their descriptor, and the info fields that make a
    value not plain (a parser, a click type, min/max) are all where fastparams looks for them."""
    from typer import core
    from typer.main import get_command

    app = typer.Typer()

    @app.command()
    def cmd(a: str = typer.Argument("x"), n: int = typer.Option(0, "--n")) -> None:  # pragma: no cover
        pass

    params = [p for p in get_command(app).params if p.name in ("a", "n") and isinstance(p, core._TyperParameter)]
    assert len(params) == 2, _changed("typer.main.get_command no longer builds _TyperParameter parameters")
    for p in params:
        assert hasattr(p, "_runtime_param") and p._runtime_param is None, \
            _changed("a parameter's _runtime_param cache slot is gone or no longer starts as None")
        info = p.type_descriptor.parameter_info
        for name in ("parser", "min", "max"):
            assert hasattr(info, name), \
                _changed(f"{type(info).__name__}.{name} is gone: fastparams would treat such values as plain")
    # Every way to give a value its own conversion must be one fastparams looks at (this Typer has no
    # click_type; fastparams still checks it, for the versions that do).
    for make in (typer.Option, typer.Argument):
        typed = {n for n in inspect.signature(make).parameters if n.endswith("_type")} - {"path_type"}
        assert typed <= {"click_type"}, _changed(f"typer.{make.__name__} has new type parameters {sorted(typed)}: "
                                                 "fastparams must leave such values to Typer")


def test_install_patches_typer():
    from typer import core

    from handoff.faces.cli import fastparams
    fastparams.install()
    patched = core._TyperParameter.get_runtime_param
    assert patched.__module__ == fastparams.__name__, \
        _changed("fastparams.install() left _TyperParameter.get_runtime_param alone (it gave up on the shape)")


# ---------------------------------------------------------------- same results as Typer's own

PROBE = r'''
import json, sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.testing import CliRunner

if sys.argv[1] == "patched":
    from handoff.faces.cli.fastparams import install
    install()

app = typer.Typer()


@app.command()
def probe(
    a: Annotated[str, typer.Argument()],
    s: Annotated[str, typer.Option("--s")] = "d",
    os_: Annotated[Optional[str], typer.Option("--os")] = None,
    i: Annotated[int, typer.Option("--i")] = 0,
    oi: Annotated[Optional[int], typer.Option("--oi")] = None,
    b: Annotated[bool, typer.Option("--b")] = False,
    ob: Annotated[Optional[bool], typer.Option("--ob/--no-ob")] = None,
    f: Annotated[float, typer.Option("--f")] = 1.0,
    of: Annotated[Optional[float], typer.Option("--of")] = None,
    lst: Annotated[list[str], typer.Option("--l")] = [],
    ol: Annotated[Optional[list[str]], typer.Option("--ol")] = None,
    p: Annotated[Optional[Path], typer.Option("--p")] = None,
    lim: Annotated[int, typer.Option("--lim", min=1, max=9)] = 1,
) -> None:
    out = {k: [type(v).__name__, v if not isinstance(v, Path) else str(v)]
           for k, v in dict(a=a, s=s, os=os_, i=i, oi=oi, b=b, ob=ob, f=f, of=of, l=lst, ol=ol, p=p, lim=lim).items()}
    print(json.dumps(out, sort_keys=True))


plain_app = typer.Typer()  # only the types the patch handles itself (defaults are coerced too)


@plain_app.command()
def plain(
    a: Annotated[str, typer.Argument()],
    s: Annotated[str, typer.Option("--s")] = "d",
    os_: Annotated[Optional[str], typer.Option("--os")] = None,
    i: Annotated[int, typer.Option("--i")] = 0,
    oi: Annotated[Optional[int], typer.Option("--oi")] = None,
    b: Annotated[bool, typer.Option("--b")] = False,
    ob: Annotated[Optional[bool], typer.Option("--ob/--no-ob")] = None,
    lst: Annotated[list[str], typer.Option("--l")] = [],
    ol: Annotated[Optional[list[str]], typer.Option("--ol")] = None,
) -> None:
    print(json.dumps(dict(a=a, s=s, os=os_, i=i, oi=oi, b=b, ob=ob, l=lst, ol=ol), sort_keys=True))


runner = CliRunner()
results = []
for argv in json.loads(sys.stdin.read()):
    r = runner.invoke(app if sys.argv[2] == "all" else plain_app, argv)
    results.append([r.exit_code, r.output])
plain_only = "pydantic" not in sys.modules
print(json.dumps({"results": results, "plain_only_without_pydantic": plain_only}))
'''

PLAIN = [
    ["x"], ["héllo wörld"], [""], ["--", "-x"],
    ["x", "--s", "text"], ["x", "--s", ""], ["x", "--s", "ünï", "--os", "o"], ["x", "--os", ""],
    ["x", "--i", "42"], ["x", "--i", "-7"], ["x", "--i", "0"], ["x", "--oi", "123456789012345678"],
    ["x", "--b"], ["x", "--ob"], ["x", "--no-ob"],
    ["x", "--l", "one"], ["x", "--l", "one", "--l", "two", "--l", ""], ["x", "--ol", "a", "--ol", "b"],
]
OTHER = [  # values the patch hands to Typer's own path (malformed, or types it does not handle)
    ["x", "--i", "x"], ["x", "--i", "1.5"], ["x", "--i", "007"], ["x", "--i", "-0"], ["x", "--i", "+3"],
    ["x", "--i", " 5"], ["x", "--i", "0x10"], ["x", "--i", "1_000"], ["x", "--i", "١٢"],
    ["x", "--oi", "12345678901234567890123"], ["x", "--i", ""],
    ["x", "--f", "2.5"], ["x", "--f", "1e3"], ["x", "--f", "nan"], ["x", "--of", "x"],
    ["x", "--p", "some/where"], ["x", "--lim", "5"], ["x", "--lim", "0"], ["x", "--lim", "x"],
    [], ["x", "--s"], ["x", "--unknown", "1"],
]


def _probe(mode: str, cases: list[list[str]], command: str = "all") -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", PROBE, mode, command], input=json.dumps(cases), capture_output=True,
                          text=True, env=env, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_patched_parsing_gives_typers_own_results():
    cases = PLAIN + OTHER
    own, fast = _probe("own", cases), _probe("patched", cases)
    differ = [(argv, o, f) for argv, o, f in zip(cases, own["results"], fast["results"]) if o != f]
    assert differ == [], _changed("fastparams coerces these command lines differently from Typer "
                                  f"(argv, Typer's (exit, output), patched): {differ}")
    assert all(code == 0 for code, _ in fast["results"][:len(PLAIN)]), fast["results"][:len(PLAIN)]


def test_plain_values_skip_pydantic():
    """The point of the patch: plain values never import Pydantic (Typer's own path does)."""
    fast = _probe("patched", PLAIN, "plain")
    own = _probe("own", PLAIN, "plain")
    assert fast["results"] == own["results"], _changed("plain values coerce differently with fastparams")
    assert all(code == 0 for code, _ in fast["results"]), fast["results"]
    assert fast["plain_only_without_pydantic"], \
        _changed("plain str/int/bool/list[str] values imported Pydantic even with fastparams installed")
    assert not own["plain_only_without_pydantic"], "Typer no longer needs Pydantic for plain values: " \
        "fastparams may be dropped"
