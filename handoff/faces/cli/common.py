"""What every command shares: output format, --repo, --commit, --session, errors.

``command(group, ...)`` registers a function as a Typer command and adds the
shared options to it, so each command body only parses its own arguments,
calls one function and returns the data to print.
"""
from __future__ import annotations

import copy
import functools
import inspect
import sys
import typing
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand

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
IdOpt = Annotated[Optional[str], typer.Option(
    "--idempotency-key", help="retry key: a retry with the same key writes nothing and replays the first result "
                              "(a msg_<ULID> is used as the event id)")]
# The work unit a command acts on comes first and bare (``handoff accept ID``); ``--work ID`` also works.
WorkArg = Annotated[str, typer.Argument(metavar="WORK_ID", show_default=False,
                                                  help="the work (handoff) id, e.g. work_01jv8...; "
                                                       "--work WORK_ID also works")]

# Old spellings kept working but not shown: parameter -> (hidden alias's parameter, its Typer option, the
# shown name, the alias's name).  ``_register`` adds the alias to every command that has the parameter.
ALIASES = {
    "handoff_id": ("work_alias", Annotated[Optional[str], typer.Option("--work", "-w", hidden=True)],
                   "WORK_ID", "--work"),
    "given_id": ("id_alias", Annotated[Optional[str], typer.Option("--id", hidden=True)],
                 "--idempotency-key", "--id"),
}


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
    aliased = {p.name: p.default is p.empty for p in own if p.name in ALIASES}  # name -> required
    for pname, required in aliased.items():  # optional for Click: the parameter or its alias (merge_alias checks)
        base, *meta = typing.get_args(hints[pname])
        if required and hasattr(meta[0], "help"):
            meta[0] = copy.copy(meta[0])
            meta[0].help = f"{meta[0].help}  [required]"
        hints[pname] = Annotated[(Optional[base], *meta)]
    if any(aliased.values()):
        kw = {"cls": RequiredArgCommand, **kw}
    own = [p.replace(annotation=hints[p.name], default=None) if p.name in aliased else p for p in own]
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]  # (a default may now precede none)
    extra: dict[str, tuple[Any, Any]] = {ALIASES[n][0]: (ALIASES[n][1], None) for n in aliased}
    extra.update({"output": (OutputOpt, "human"), "json_": (JsonOpt, False), "repo": (RepoOpt, None)})
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
            for pname, required in aliased.items():
                merge_alias(kwargs, pname, required)
            return _run(fn, output, repo, commit, kwargs)
        except HandoffError as err:
            fail(output if output in render.FORMATS else "human", err)

    hints.update({n: a for n, (a, _d) in extra.items()})
    wrapper.__annotations__ = hints
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    _SEQ[id(wrapper)] = seq
    group.command(name, **kw)(wrapper)


class RequiredArgCommand(TyperCommand):
    """A command whose argument Click takes as optional, because its alias may give it instead, but which is
    required: the usage line shows it as Typer shows a required argument."""

    def collect_usage_pieces(self, ctx):
        required = {f"[{ALIASES[n][2]}]": f"{{{ALIASES[n][2]}}}" for n in ALIASES}
        return [required.get(piece, piece) for piece in super().collect_usage_pieces(ctx)]


def merge_alias(kwargs: dict, name: str, required: bool) -> None:
    """Fold a hidden alias (``--work``, ``--id``) into its parameter; both given and different is a usage error."""
    alias, _opt, shown, alias_name = ALIASES[name]
    other = kwargs.pop(alias, None)
    value = kwargs.get(name)
    if value is not None and other is not None and other != value:
        raise HandoffError("conflicting_arguments", f"{shown} {value!r} and {alias_name} {other!r} disagree",
                           hint=f"give it once ({alias_name} is the old spelling of {shown})", exit_code=EXIT_USAGE)
    if value is None:
        value = other
    if value is None and required:
        raise HandoffError("usage", f"Missing argument '{shown}'.", hint="see --help for this command",
                           exit_code=EXIT_USAGE)
    kwargs[name] = value


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

