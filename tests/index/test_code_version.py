"""``code_version`` keys the cache: it must change with every module whose code decides what the cache holds."""
from __future__ import annotations

import ast
from pathlib import Path

from handoff.index import db

PACKAGE = Path(db.__file__).resolve().parents[1]
# reached from the index but deciding nothing the cache holds: git and the store read bytes, errors names
# refusals, checks.admins_of's answer is itself part of the state file's key
NOT_PARSING = ("handoff.git", "handoff.store", "handoff.errors", "handoff.core.checks")


def _imports(mod: str) -> set[str]:
    path = PACKAGE.parent / (mod.replace(".", "/") + ".py")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("handoff"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("handoff"))
    return {m for m in out if (PACKAGE.parent / (m.replace(".", "/") + ".py")).exists()}


def test_code_version_hashes_every_module_that_parses_or_reduces_events():
    todo = [f"handoff.index.{p.stem}" for p in (PACKAGE / "index").glob("*.py") if p.stem != "__init__"]
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen or mod.startswith(NOT_PARSING):
            continue
        seen.add(mod)
        todo.extend(_imports(mod))
    hashed = {"handoff." + name.removesuffix(".py").replace("/", ".") for name in db.CODE_MODULES}
    missing = sorted(m for m in seen if not m.startswith("handoff.index") and m not in hashed)
    assert missing == [], f"add to db.CODE_MODULES: {missing}"
