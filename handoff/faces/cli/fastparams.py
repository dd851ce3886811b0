"""Cheap coercion of plain command-line values, so a command does not pay for Pydantic.

The installed Typer coerces every parameter value through a Pydantic
``TypeAdapter``: the first command-line value that is not already a bool
imports Pydantic and builds adapters, about 90 ms of a ~150 ms run.  Our
parameters are plain ``str``, ``int``, ``bool`` and ``list[str]`` values that
Click already hands over as strings.  For those, when the value is
unambiguous (a string for ``str``, a bool for ``bool``, decimal digits for
``int``, strings for ``list[str]``), this returns what the adapter would
return.  Anything else (a malformed int, an enum, a path, a custom parser)
goes through Typer's own adapter, so conversions and error messages stay
exactly Typer's.

If Typer's internals change shape, ``install`` does nothing and Typer works
as shipped, only slower.
"""
from __future__ import annotations

import re

_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})\Z")
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    try:
        from typer import _coercion, core
        base = _coercion.RuntimeParam
        build = _coercion.build_runtime_param
        param_cls = core._TyperParameter
        original = param_cls.get_runtime_param
    except (ImportError, AttributeError):
        return
    from typing import get_args, get_origin

    class PlainRuntimeParam(base):  # type: ignore[misc, valid-type]
        def _coerce_value(self, value, param, ctx):
            ann = self.annotation
            kind = type(value)
            if ann is str and kind is str:
                return value
            if ann is bool and kind is bool:
                return value
            if ann is int:
                if kind is int:
                    return value
                if kind is str and _INT.match(value):
                    return int(value)
            elif ann is not str and ann is not bool and kind in (list, tuple) \
                    and all(type(v) is str for v in value):
                return list(value)  # list[str]
            full = build(param.type_descriptor)  # Typer's own path: same conversions, same errors
            param._runtime_param = full
            return full._coerce_value(value, param, ctx)

    def get_runtime_param(self):
        if self._runtime_param is None:
            try:
                desc = self.type_descriptor
                info = desc.parameter_info
                ann = desc.annotation
                plain = ann in (str, int, bool) or (get_origin(ann) is list and get_args(ann) == (str,))
                if plain and desc.file_annotation is None and getattr(info, "parser", None) is None \
                        and getattr(info, "click_type", None) is None and not desc.is_choice \
                        and getattr(info, "min", None) is None and getattr(info, "max", None) is None:
                    self._runtime_param = PlainRuntimeParam(parameter_info=info, annotation=ann)
            except Exception:
                self._runtime_param = None
        if self._runtime_param is None:
            return original(self)
        return self._runtime_param

    param_cls.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    _installed = True
