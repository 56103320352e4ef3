"""The ``@routed`` decorator: a wrapt function wrapper over the routing core."""

from __future__ import annotations

import copy
import inspect
import logging
import types
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Literal,
    ParamSpec,
    TypeVar,
    cast,
    overload,
)

import wrapt

from ._config import UNSET, AnyTracker, Unset, check_listeners, check_names, check_tracker
from ._core import Runner, runner
from ._exceptions import InvalidConfigError
from ._route import ExceptionFilter, Route, _seconds
from .strategies._basic import Strategy

if TYPE_CHECKING:
    from ._typing import AsyncRouted, AsyncRoutedClassmethod, Routed, RoutedClassmethod
    from .events import Listener

__all__ = ["routed"]

P = ParamSpec("P")
P2 = ParamSpec("P2")
T = TypeVar("T")


class _SignatureSurrogate(wrapt.CallableObjectProxy[Any]):
    """The ``__func__`` of a bound routed method: inspect reads its signature from here."""

    def __init__(self, wrapped: object, signature: inspect.Signature) -> None:
        super().__init__(wrapped)
        self._self_signature = signature

    @property
    def __signature__(self) -> inspect.Signature:
        return self._self_signature


class _BoundSigned(wrapt.BoundFunctionWrapper[..., Any]):
    """A bound wrapper showing its parent's signature (the provider parameter hidden)."""

    @property
    def __signature__(self) -> inspect.Signature:
        signature: inspect.Signature = self._self_parent._self_signature
        return signature

    @property
    def __func__(self) -> _SignatureSurrogate:
        return _SignatureSurrogate(
            getattr(self.__wrapped__, "__func__", self.__wrapped__),
            self._self_parent._self_signature,
        )


class _Signed(wrapt.FunctionWrapper[..., Any]):
    """A function wrapper showing ``signature`` instead of the wrapped function's."""

    __bound_function_wrapper__ = _BoundSigned

    def __init__(
        self, wrapped: Callable[..., Any], wrapper: Callable[..., Any], signature: inspect.Signature
    ) -> None:
        super().__init__(wrapped, wrapper)
        self._self_signature = signature

    @property
    def __signature__(self) -> inspect.Signature:
        signature: inspect.Signature = self._self_signature
        return signature


class _BoundRoutedFunction(_BoundSigned):
    """A routed method bound to its instance or class."""

    @property
    def execute(self) -> Callable[..., Any]:
        """Route the call; return (or, for async, await) a RouteResult."""
        executor = self._self_parent._self_executor
        return cast(Callable[..., Any], executor.__get__(self._self_instance, self._self_owner))


class _RoutedFunction(_Signed):
    """A function routed across providers."""

    __bound_function_wrapper__ = _BoundRoutedFunction

    def __init__(
        self,
        wrapped: Callable[..., Any],
        wrapper: Callable[..., Any],
        executor: Callable[..., Any],
        route: Route,
        signature: inspect.Signature,
    ) -> None:
        super().__init__(wrapped, wrapper, signature)
        self._self_route = route
        # Same binding rules as the call itself, so bound .execute() gets the same instance.
        self._self_executor = _Signed(wrapped, executor, signature)

    @property
    def execute(self) -> Callable[..., Any]:
        """Route the call; return (or, for async, await) a RouteResult."""
        return cast(Callable[..., Any], self._self_executor)


if TYPE_CHECKING:

    class _BoundSlots:
        __self__: object
        _parent: _RoutedFunction

else:
    # Annotations in the class body itself would give it an __annotations__ of its own: the
    # bound method's must show through.
    _BoundSlots = object


class _BoundRoutedMethod(_BoundSlots):
    """A sync routed function bound to an instance: what ``instance.method`` returns.

    Made at every attribute access, so it is a small slotted object instead of a wrapt bound
    wrapper (which costs ~0.5 us to make, a third of a routed call). It reads like the bound
    method: its signature (provider hidden), ``__self__``, ``__func__``, ``__wrapped__`` (the
    bound method), name, doc and any other attribute are the bound method's.
    """

    # Made without __init__ (see _routed_class), whose subclass per function defines __call__.
    __slots__ = ("__self__", "__weakref__", "_parent")

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # Like wrapt's bound wrapper: isinstance(..., MethodType) and inspect.ismethod() hold.
        return types.MethodType

    @property
    def __wrapped__(self) -> Any:
        return types.MethodType(self._parent.__wrapped__, self.__self__)

    @property
    def execute(self) -> Callable[..., Any]:
        """Route the call; return a RouteResult."""
        executor = self._parent._self_executor
        instance = self.__self__
        return cast(Callable[..., Any], executor.__get__(instance, type(instance)))

    @property
    def __signature__(self) -> inspect.Signature:
        signature: inspect.Signature = self._parent._self_signature
        params = tuple(signature.parameters.values())
        if params and params[0].kind is not inspect.Parameter.VAR_POSITIONAL:
            params = params[1:]  # self
        return signature.replace(parameters=params)

    @property
    def __func__(self) -> _SignatureSurrogate:
        return _SignatureSurrogate(self._parent.__wrapped__, self._parent._self_signature)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        doc: str | None = self._parent.__wrapped__.__doc__
        return doc

    @property
    def __module__(self) -> str:  # type: ignore[override]
        module: str = self._parent.__wrapped__.__module__
        return module

    def __getattr__(self, name: str) -> Any:
        if name in ("__self__", "_parent"):  # unset: a copy being made
            raise AttributeError(name)
        return getattr(self.__wrapped__, name)

    def __get__(self, instance: object, owner: type | None = None) -> _BoundRoutedMethod:
        # A bound method binds no further (and must not hand out the raw one).
        return self

    def __dir__(self) -> list[str]:
        # The faked __class__ would list MethodType's attributes only (mocks read dir()).
        return sorted(
            {*dir(self.__wrapped__), "execute", "__signature__", "__wrapped__", "__func__"}
        )

    def __copy__(self) -> _BoundRoutedMethod:
        return self  # immutable, as a bound method

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        parent = self._parent
        return parent.__get__(copy.deepcopy(self.__self__, memo), None)

    def __reduce__(self) -> tuple[Any, ...]:
        # As a bound method: pickled as "the attribute of its instance", when that attribute
        # is this routed function (under another name it would be the plain function).
        name = self._parent.__name__
        instance = self.__self__
        if inspect.getattr_static(type(instance), name, None) is not self._parent:
            raise TypeError(
                f"cannot pickle {self!r}: its class does not hold it as {name!r}, the name "
                "of its function"
            )
        return (getattr, (instance, name))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _BoundRoutedMethod):
            return NotImplemented
        return other._parent is self._parent and other.__self__ is self.__self__

    def __hash__(self) -> int:
        return hash((id(self._parent), id(self.__self__)))

    def __repr__(self) -> str:
        return f"<bound routed method {self._parent.__qualname__} of {self.__self__!r}>"


def _routed_class(route: Route, wrapped: Callable[..., Any], run: Runner) -> type[_RoutedFunction]:
    """Return a subclass of _RoutedFunction whose ``__call__`` routes straight to the core.

    Unbound, the wrapped callable already carries any binding (a plain function, a
    staticmethod's function or a bound method), so wrapt's per-call binding checks (a failed
    ``__self__`` lookup costs more than the routing decision) are not needed; and reading the
    route through the proxy would cost ~150 ns an attribute, so the closure holds it instead.
    A sync function bound to an instance (a method call) gets a ``_BoundRoutedMethod``; every
    other binding is wrapt's. One small class per routed function, made at decoration time.
    """

    def __call__(self: _RoutedFunction, *args: Any, **kwargs: Any) -> Any:
        return run(wrapped, args, kwargs, False)

    namespace: dict[str, Any] = {"__call__": __call__}
    # Exactly a function: a wrapt-decorated one (which claims to be one) binds through wrapt.
    if not route.is_async and type(wrapped) is types.FunctionType:
        wrapt_get = _RoutedFunction.__get__

        def bound_call(self: _BoundRoutedMethod, *args: Any, **kwargs: Any) -> Any:
            return run(wrapped, args, kwargs, False, self.__self__)

        bound = type(
            _BoundRoutedMethod.__name__,
            (_BoundRoutedMethod,),
            {
                "__call__": bound_call,
                "__slots__": (),
                # type() would shadow these with the new class's own.
                "__doc__": vars(_BoundRoutedMethod)["__doc__"],
                "__module__": vars(_BoundRoutedMethod)["__module__"],
            },
        )
        new = object.__new__

        def __get__(self: _RoutedFunction, instance: object, owner: type | None = None) -> Any:
            if instance is None:
                return wrapt_get(self, instance, owner)
            made: _BoundRoutedMethod = new(bound)
            made.__self__ = instance
            made._parent = self  # type: ignore[assignment]
            return made

        namespace["__get__"] = __get__
    return type(_RoutedFunction.__name__, (_RoutedFunction,), namespace)


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


def _visible_signature(target: Callable[..., Any], kind: str) -> inspect.Signature:
    """Return the signature of ``target`` without its provider parameter."""
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
    return signature.replace(parameters=params)


class _Decorator:
    """The decorator returned by :func:`routed`; options are already validated."""

    __slots__ = ("_options",)

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: classmethod[Any, Concatenate[Any, P], Coroutine[Any, Any, T]]
    ) -> AsyncRoutedClassmethod[P, T]: ...

    @overload
    def __call__(self, fn: classmethod[Any, Concatenate[Any, P], T]) -> RoutedClassmethod[P, T]: ...

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: staticmethod[Concatenate[Any, P], Coroutine[Any, Any, T]]
    ) -> AsyncRoutedClassmethod[P, T]: ...

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: staticmethod[Concatenate[Any, P], T]
    ) -> RoutedClassmethod[P, T]: ...

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]
    ) -> AsyncRouted[P, T]: ...

    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], T]) -> Routed[P, T]: ...

    def __call__(self, fn: Any) -> Any:
        kind = "function"
        target = fn
        if isinstance(fn, classmethod):
            kind, target = "classmethod", fn.__func__
        elif isinstance(fn, staticmethod):
            kind, target = "staticmethod", fn.__func__
        if not callable(target):
            raise InvalidConfigError(f"@routed(...) decorates a function, got {fn!r}")
        is_async = inspect.iscoroutinefunction(target)
        name = getattr(target, "__qualname__", type(target).__name__)
        route = Route(is_async=is_async, name=name, **self._options)
        signature = _visible_signature(target, kind)
        run = runner(route)

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return run(wrapped, args, kwargs, False)

        def executor(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return run(wrapped, args, kwargs, True)

        return _routed_class(route, fn, run)(fn, wrapper, executor, route, signature)


def routed(
    *,
    providers: Sequence[Any] | Callable[[], Sequence[Any]],
    strategy: str | Strategy = "fallback",
    cooldown: AnyTracker | Literal[Unset.UNSET] | None = UNSET,
    exempt: Iterable[str] | None = None,
    fallback_on: ExceptionFilter = Exception,
    cooldown_on: ExceptionFilter | None = None,
    timeout: float | None = None,
    attempt_timeout: float | None = None,
    max_attempts: int | None = None,
    listeners: Iterable[Listener] | None = None,
    logger: logging.Logger | None = None,
) -> _Decorator:
    """Route calls of the decorated function across ``providers``.

    The decorated function takes the provider as its first parameter (after ``self`` or
    ``cls``); the routed callable takes the remaining ones. Works on functions, methods,
    classmethods, staticmethods (put ``@routed`` above ``@classmethod``/``@staticmethod``) and
    ``async def`` functions. ``fn.execute(...)`` returns a :class:`RouteResult`.

    Args:
        providers: a sequence (copied now) or a zero-argument callable returning one (read at
            every call). Provider names come from ``provider.name`` or the str itself.
        strategy: a registered strategy name (a fresh instance for this function) or a
            strategy object (shared state when shared). Default ``"fallback"``.
        cooldown: a tracker; omitted: the global one read at call time; None: no tracking.
        exempt: names whose failures are never recorded; omitted: the global set, read at
            call time.
        fallback_on: which exceptions fall over to the next provider: a type, a tuple of
            types or a predicate. Others propagate at once, unrecorded. Default ``Exception``.
        cooldown_on: which of the failures that fall over count toward a cooldown (same
            forms); e.g. ``lambda e: not isinstance(e, TimeoutError)``. Default: all of them.
        timeout: seconds for the whole call across attempts. Async: enforced; sync: no new
            attempt starts past it. Raises ``RoutingTimeoutError``.
        attempt_timeout: seconds per attempt (async only): a timed-out attempt is a failure
            that falls over.
        max_attempts: the most providers called per call, the terminus included: the last
            slot is always the terminus's.
        listeners: event listeners of this function (beside the global ones); see
            ``resilient_routing.events``.
        logger: default ``logging.getLogger("resilient_routing")`` (or ``configure(logger=)``).

    Raises:
        InvalidConfigError: an unknown strategy or an invalid option (raised here, at
            decoration time, not at the first call).
    """
    # One-shot iterables are read once, here: validation must not use them up.
    if exempt is not None and not isinstance(exempt, (str, bytes)):
        exempt = check_names(exempt, "exempt=")
    if listeners is not None and not isinstance(listeners, (str, bytes)):
        listeners = check_listeners(listeners, "listeners=")
    options: dict[str, Any] = {
        "providers": providers,
        "strategy": strategy,
        "cooldown": cooldown,
        "exempt": exempt,
        "fallback_on": fallback_on,
        "cooldown_on": cooldown_on,
        "timeout": timeout,
        "attempt_timeout": attempt_timeout,
        "max_attempts": max_attempts,
        "listeners": listeners,
        "logger": logger,
    }
    # Validate now so a typo fails at import time, not at the first call in production; what
    # depends on sync or async (the tracker, attempt_timeout) is checked on decoration.
    Route(is_async=False, **{**options, "cooldown": UNSET, "attempt_timeout": None})
    _seconds("attempt_timeout", attempt_timeout)
    if cooldown is not UNSET:
        check_tracker(cooldown, "cooldown=")
    return _Decorator(options)
