"""What a decorated callable is: sync or async, its signature without the provider, its code.

Read once, when a function is routed; :mod:`._binding` shows what it finds.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Sequence
from typing import Any

from ._exceptions import InvalidConfigError

__all__ = ["code_returning", "kind_of", "spelled_out", "visible_signature"]

#: The code flags saying what calling a function returns (a generator, a coroutine...).
_RETURNS = (
    inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)


def code_returning(target: object, flag: int) -> types.CodeType | None:
    """Return the code of ``target`` with ``flag`` (``CO_COROUTINE``...) saying what it returns.

    What ``inspect.iscoroutinefunction`` and friends (and tenacity, asking them) read of a
    routed callable whose call returns something else than the function it routes: a stream
    of an ``async def``, a RouteResult. None when ``target`` has no code to show.
    """
    code = getattr(target, "__code__", None)
    if not isinstance(code, types.CodeType):
        return None
    return code.replace(co_flags=code.co_flags & ~_RETURNS | flag)


def kind_of(fn: object) -> tuple[bool, bool]:
    """Return whether calling ``fn`` makes a coroutine or an async iterator; and a generator.

    Beyond functions and partials of them, an object's ``__call__`` tells (a client object
    with ``async def __call__`` is an async route).
    """
    for subject in (fn, type(fn).__call__ if callable(fn) else fn):
        asyncgen = inspect.isasyncgenfunction(subject)
        is_async = asyncgen or inspect.iscoroutinefunction(subject)  # an AsyncMock: itself
        generator = asyncgen or inspect.isgeneratorfunction(subject)
        if is_async or generator or inspect.isroutine(fn) or isinstance(fn, functools.partial):
            return is_async, generator
    return False, False


def _provider_index(
    target: Callable[..., Any], kind: str, params: Sequence[inspect.Parameter]
) -> int:
    if kind == "classmethod":
        return 1
    if kind == "staticmethod":
        return 0
    # A def in a class body has a qualname like "Client.generate" (not "f.<locals>.g"); its
    # first parameter is self. A staticmethod wrapped from inside names no self.
    qualname = getattr(target, "__qualname__", "")
    in_class = "." in qualname and qualname.rsplit(".", 2)[-2] != "<locals>"
    if in_class and params and params[0].name in ("self", "cls"):
        return 1
    return 0


def visible_signature(target: Callable[..., Any], kind: str) -> tuple[inspect.Signature, bool]:
    """Return the signature of ``target`` without its provider parameter.

    And whether ``target`` is a method taking its instance first (the provider after it).
    """
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError) as exc:
        raise InvalidConfigError(f"cannot read the signature of {target!r}: {exc}") from exc
    params = list(signature.parameters.values())
    index = _provider_index(target, kind, params)
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) > index and params[index].kind in positional:
        del params[index]
    elif not any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params[: index + 1]):
        raise InvalidConfigError(
            f"{getattr(target, '__qualname__', target)!r} must take the provider as its first "
            f"positional parameter (after self or cls for methods), got {signature}"
        )
    return signature.replace(parameters=params), kind == "function" and index == 1


def spelled_out(target: Any, options: Sequence[inspect.Parameter]) -> None:
    """Give ``target`` a signature listing ``options`` where it takes ``**options``.

    What ``help()``, IDEs and ``inspect.signature`` show: each keyword and its default, as
    the typed ``Unpack[...]`` options alone would not. ``target``: a function or a class.
    """
    signature = inspect.signature(target)
    own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    target.__signature__ = signature.replace(parameters=[*own, *options])
