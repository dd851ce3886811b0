"""The package's shape is a contract: imports run one way, down the layers, and no module cycles.

Read from the source with ``ast`` (every import counts: module level, inside functions, and under
``TYPE_CHECKING``), so an import hidden in a function cannot smuggle a cycle or an upward edge in.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "handoff"

# Lower layers never import higher ones; peers in one layer may import each other (but never in a cycle).
LAYERS = [
    ("handoff.errors",),
    ("handoff.core",),
    ("handoff.views",),
    ("handoff.store", "handoff.git", "handoff.index"),
    ("handoff.app",),
    ("handoff.faces",),
]
MAX_LINES = 400
TOO_LONG_YET: set[str] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The handoff modules ``name`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("handoff"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("handoff"):
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.add(sub if sub in known else target)
    out.discard(name)
    return {m for m in out if m in known}


def layer(name: str) -> int | None:
    for rank, roots in enumerate(LAYERS):
        if any(name == r or name.startswith(r + ".") for r in roots):
            return rank
    return None  # handoff/__init__ and __main__: the entry points, above every layer


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def test_every_module_sits_in_a_layer():
    loose = [m for m in modules() if layer(m) is None and m not in ("handoff", "handoff.__main__")]
    assert loose == [], f"put these in a layer package: {loose}"


def test_imports_run_down_the_layers():
    upward = []
    for name, deps in graph().items():
        mine = layer(name)
        if mine is None:
            continue
        for dep in deps:
            theirs = layer(dep)
            if dep in ("handoff",):
                theirs = len(LAYERS)
            if theirs is not None and theirs > mine:
                upward.append(f"{name} -> {dep}")
    assert sorted(upward) == []


def test_no_import_cycles():
    g = graph()
    # package __init__ files that only mark a package are not nodes of their own; an import of a module
    # also runs its package's __init__, which is empty here (checked below), so it adds no edges.
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(g.get(n, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)
    assert cycles == []


def test_layer_packages_are_empty_markers():
    """``import handoff.core.model`` must not pull in the rest of ``core`` (start-up stays lazy)."""
    for name in ("core", "core/yaml", "views", "git", "store", "app", "faces"):
        text = (PACKAGE / name / "__init__.py").read_text()
        assert "import" not in text, name


def test_no_module_is_a_house_of_its_own():
    long = {m: n for m, p in modules().items()
            if (n := len(p.read_text().splitlines())) > MAX_LINES and m not in TOO_LONG_YET}
    assert long == {}, f"split these (over {MAX_LINES} lines): {long}"


def test_no_private_names_cross_modules():
    crossing = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or node.level):
                mod = node.module or ""
                if not (mod.startswith("handoff") or node.level):
                    continue
                crossing += [f"{module_name(path)}: {a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
    assert crossing == []
