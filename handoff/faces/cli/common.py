"""What every command shares: output format, --repo, --commit, --session, errors.

``command(group, ...)`` registers a function as a Typer command and adds the
shared options to it, so each command body only parses its own arguments,
calls one function and returns the data to print.
"""
from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from handoff.errors import EXIT_USAGE, HandoffError
from handoff.views import render

OutputOpt = Annotated[str, typer.Option("--output", "-o", help="human, json, jsonl or yaml",
                                        show_default=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="same as -o json")]
RepoOpt = Annotated[Optional[str], typer.Option("--repo", help="path inside the git repository (default: cwd)")]
CommitOpt = Annotated[Optional[bool], typer.Option("--commit/--no-commit",
                                                   help="commit the new event files (default: config `commit`)")]
SessionOpt = Annotated[Optional[str], typer.Option("--session", "-s", envvar="HANDOFF_SESSION",
                                                   help="acting session id or peer id (env HANDOFF_SESSION)")]
IdOpt = Annotated[Optional[str], typer.Option("--id", "--idempotency-key",
                                              help="idempotent retry key: re-running writes nothing and returns the original")]


# The CLI's entry point (``handoff.faces.cli.main``), set by it on each run: the demo drives the real
# command line in-process, and takes it from here rather than importing the package that imports it.
ENTRY: list[Callable[[list[str]], int]] = []


class Cx:
    """Per-invocation context handed to command bodies."""

    def __init__(self, output: str, repo: str | None, commit: bool | None):
        if output not in render.FORMATS:
            raise HandoffError("usage", f"unknown output format {output!r}", hint="use -o human|json|jsonl|yaml")
        self.output = output
        self.repo = repo
        self.commit = commit
        self._ws = None

    @property
    def ws(self):
        if self._ws is None:
            from handoff.app.workspace import Workspace
            self._ws = Workspace(self.repo)
        return self._ws

    @property
    def hf(self):
        """The Python API over this invocation's workspace (one consistent read per command)."""
        from handoff.app.api import Handoff
        return Handoff(self.repo, workspace=lambda: self.ws, commit=self.commit, snapshot=True)

    def me(self, session: str | None):
        """The acting session, resolved (and checked) when the API call reads or writes."""
        from handoff.app.api import Session
        return Session(self.hf, session)

    @property
    def machine(self) -> bool:
        return self.output != "human"

    def emit(self, data: Any, human: Callable[[Any], str] | None = None) -> None:
        render.emit(data, self.output, human)

    def note(self, text: str) -> None:
        """A remark for people, on stderr, never mixed into machine output."""
        if text:
            sys.stderr.write(render.safe(text) + "\n")


def fail(cx_output: str, err: HandoffError) -> None:
    if cx_output in ("json", "jsonl", "yaml"):
        render.emit(err.to_json(), "json" if cx_output == "jsonl" else cx_output)
    else:
        sys.stderr.write(f"error: {render.safe(err.message)}\n")
        if err.hint:
            sys.stderr.write(f"hint: {render.safe(err.hint)}\n")
        sys.stderr.write(f"({err.reason_code})\n")
    raise typer.Exit(err.exit_code)


# Commands are declared at import and handed to Typer only when a run needs them: Typer inspects every
# registered command's signature each time it builds the command line, so ``handoff inbox`` registers
# ``inbox`` alone (cli.main picks; --help and unknown names register everything).
PENDING: list[tuple] = []
_SEQ: dict[int, int] = {}


def command(group: typer.Typer, name: str | None = None, *, writes: bool = False, **kw):
    """Declare ``fn(cx, ...)`` as a command of ``group``, with the shared options added."""

    def deco(fn: Callable):
        PENDING.append((group, name, fn, writes, kw, len(_SEQ) + len(PENDING)))
        return fn

    return deco


def register_pending(select: Callable[[typer.Typer, str | None], bool] | None = None) -> None:
    """Hand the declared commands that ``select`` picks (all by default) to Typer, in declaration order."""
    keep: list[tuple] = []
    touched: dict[int, typer.Typer] = {}
    for item in PENDING:
        group, name, fn, writes, kw, seq = item
        if select is not None and not select(group, name):
            keep.append(item)
            continue
        _register(group, name, fn, writes, kw, seq)
        touched[id(group)] = group
    for group in touched.values():
        group.registered_commands.sort(key=lambda info: _SEQ.get(id(info.callback), 0))
    PENDING[:] = keep


def _register(group: typer.Typer, name: str | None, fn: Callable, writes: bool, kw: dict, seq: int) -> None:
    """Build the wrapper Typer sees (the command's own options, then -o/--json/--repo[/--commit])."""
    sig = inspect.signature(fn)
    hints = dict(typing_hints(fn))
    hints.pop("cx", None)
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values() if p.name != "cx"]
    extra = {"output": (OutputOpt, "human"), "json_": (JsonOpt, False), "repo": (RepoOpt, None)}
    if writes:
        extra["commit"] = (CommitOpt, None)
    params = own + [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=d)
                    for n, (a, d) in extra.items()]

    @functools.wraps(fn)
    def wrapper(**kwargs):
        output = "json" if kwargs.pop("json_") else kwargs.pop("output")
        kwargs.pop("output", None)
        commit = kwargs.pop("commit", None)
        repo = kwargs.pop("repo")
        try:
            return _run(fn, output, repo, commit, kwargs)
        except HandoffError as err:
            fail(output if output in render.FORMATS else "human", err)

    hints.update({n: a for n, (a, _d) in extra.items()})
    wrapper.__annotations__ = hints
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    _SEQ[id(wrapper)] = seq
    group.command(name, **kw)(wrapper)


def _run(fn: Callable, output: str, repo: str | None, commit: bool | None, kwargs: dict):
    """Run a command body; when reading the cache fails (damaged, or deleted under the read), drop it and
    run the body once more on a fresh build -- unless it already wrote, which must not happen twice."""
    for fresh in (False, True):
        cx = Cx(output, repo, commit)
        try:
            return fn(cx, **kwargs)
        except HandoffError:
            raise
        except Exception as exc:
            from handoff import index
            ws = cx._ws
            if ws is None or index.trouble(exc) is None:
                raise
            if fresh:
                if not isinstance(exc, index.sqlite3.Error):
                    raise  # (not SQLite's error on a fresh build: a bug, whose traceback is wanted)
                raise index.unreadable(exc) from None
            index.recover(ws, exc)
            if getattr(ws, "wrote", False):
                raise HandoffError("cache_unreadable", f"the write went through, but reading the cache "
                                   f"afterwards failed ({exc}); the cache was dropped",
                                   hint="read again (e.g. `handoff status`): the next command rebuilds the "
                                        "cache") from None


def typing_hints(fn: Callable) -> dict:
    import typing
    return typing.get_type_hints(fn, include_extras=True)


def wants_json(argv: list[str]) -> str:
    """The output format asked for on the command line, found before Click parses it (for usage errors)."""
    for i, a in enumerate(argv):
        if a == "--json":
            return "json"
        if a in ("-o", "--output") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--output="):
            return a.split("=", 1)[1]
        if a.startswith("-o") and len(a) > 2:
            return a[2:]
    return "human"


def usage_exit(argv: list[str], message: str) -> int:
    fmt = wants_json(argv)
    err = HandoffError("usage", message, hint="see --help for this command", exit_code=EXIT_USAGE)
    if fmt in ("json", "jsonl", "yaml"):
        render.emit(err.to_json(), "json")
    else:
        sys.stderr.write(f"error: {message}\nhint: see --help for this command\n")
    return EXIT_USAGE

