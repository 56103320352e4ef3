"""How a routed function looks and binds: signatures without the provider, bound methods.

``@routed`` returns a wrapt function wrapper (:class:`RoutedFunction`) whose ``__call__`` goes
straight to its route's runner; a sync function bound to an instance gets a small slotted
:class:`BoundRoutedMethod` instead of wrapt's bound wrapper (made at every attribute access).
"""

from __future__ import annotations

import copy
import inspect
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, SupportsIndex, cast

import wrapt

from ._callables import code_returning

if TYPE_CHECKING:
    from ._routing.route import Route
    from ._routing.runners import Runner

__all__ = ["RoutedFunction", "bind_first", "routed_class"]


class _SignatureSurrogate(wrapt.CallableObjectProxy[Any]):
    """The ``__func__`` of a bound routed method: inspect reads its signature from here."""

    def __init__(
        self, wrapped: object, signature: inspect.Signature, code: types.CodeType | None
    ) -> None:
        super().__init__(wrapped)
        self._self_signature = signature
        self._self_code = code

    @property
    def __signature__(self) -> inspect.Signature:
        return self._self_signature

    @property
    def __code__(self) -> types.CodeType:
        code: types.CodeType = self._self_code or self.__wrapped__.__code__
        return code


class _BoundSigned(wrapt.BoundFunctionWrapper[..., Any]):
    """A bound wrapper showing its parent's signature (the provider parameter hidden)."""

    @property
    def __signature__(self) -> inspect.Signature:
        signature: inspect.Signature = self._self_parent._self_signature
        return signature

    @property
    def __func__(self) -> _SignatureSurrogate:
        parent = self._self_parent
        return _SignatureSurrogate(
            getattr(self.__wrapped__, "__func__", self.__wrapped__),
            parent._self_signature,
            parent._self_code,
        )


class _Signed(wrapt.FunctionWrapper[..., Any]):
    """A function wrapper showing ``signature`` instead of the wrapped function's.

    ``code``: the code to show instead of the wrapped function's (see :func:`code_returning`).
    """

    __bound_function_wrapper__ = _BoundSigned

    def __init__(
        self,
        wrapped: Callable[..., Any],
        wrapper: Callable[..., Any],
        signature: inspect.Signature,
        code: types.CodeType | None = None,
    ) -> None:
        super().__init__(wrapped, wrapper)
        self._self_signature = signature
        self._self_code = code

    @property
    def __signature__(self) -> inspect.Signature:
        signature: inspect.Signature = self._self_signature
        return signature

    @property
    def __code__(self) -> types.CodeType:
        code: types.CodeType = self._self_code or self.__wrapped__.__code__
        return code


class _BoundRoutedFunction(_BoundSigned):
    """A routed method bound to its instance or class."""

    @property
    def execute(self) -> Callable[..., Any]:
        """Route the call; return (or, for async, await) a RouteResult."""
        executor = self._self_parent._self_executor
        return cast(Callable[..., Any], executor.__get__(self._self_instance, self._self_owner))

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        parent = cast(RoutedFunction, self._self_parent)
        return _reduce_bound(self, parent, self._self_instance, self._self_owner)

    def __reduce__(self) -> tuple[Any, ...]:
        parent = cast(RoutedFunction, self._self_parent)
        return _reduce_bound(self, parent, self._self_instance, self._self_owner)

    def __copy__(self) -> _BoundRoutedFunction:
        return self  # immutable, as a bound method

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self._self_parent.__get__(copy.deepcopy(self._self_instance, memo), self._self_owner)

    def __dir__(self) -> list[str]:
        return sorted({*dir(self.__wrapped__), "execute", "__signature__", "__wrapped__"})

    def __repr__(self) -> str:
        instance = self._self_instance
        parent = repr(self._self_parent)
        return parent if instance is None else f"{parent[:-1]} bound to {instance!r}>"


def _reduce_bound(
    bound: object, parent: RoutedFunction, instance: object, owner: object = None
) -> tuple[Any, ...]:
    """Pickle a routed method bound to ``instance`` as "the attribute of its instance".

    Read on its class (``instance`` None): the attribute of its class. Only when that
    attribute is this routed function (under another name it would be the plain function).
    """
    name = parent.__name__
    if instance is None and isinstance(owner, type):
        instance, holder = owner, owner
    else:
        holder = type(instance)
    if instance is None or inspect.getattr_static(holder, name, None) is not parent:
        raise TypeError(
            f"cannot pickle {bound!r}: its class does not hold it as {name!r}, the name of "
            "its function"
        )
    return (getattr, (instance, name))


class RoutedFunction(_Signed):
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
        # What a call returns: a stream (async or not) for a streaming route.
        stream = inspect.CO_ASYNC_GENERATOR if route.is_async else inspect.CO_GENERATOR
        super().__init__(
            wrapped, wrapper, signature, code_returning(wrapped, stream) if route.stream else None
        )
        self._self_route = route
        # Same binding rules as the call itself, so bound .execute() gets the same instance.
        # It returns a RouteResult, awaited for an async route.
        result = inspect.CO_COROUTINE if route.is_async else 0
        self._self_executor = _Signed(wrapped, executor, signature, code_returning(wrapped, result))

    @property
    def execute(self) -> Callable[..., Any]:
        """Route the call; return (or, for async, await) a RouteResult."""
        return cast(Callable[..., Any], self._self_executor)

    def __reduce_ex__(self, protocol: SupportsIndex) -> str:
        # As a function: pickled by reference, its module's attribute of its qualified name
        # (pickle checks that the name finds this very object).
        return self.__qualname__

    def __reduce__(self) -> str:
        return self.__qualname__

    def __copy__(self) -> RoutedFunction:
        return self  # immutable, as a function

    def __deepcopy__(self, memo: dict[int, Any]) -> RoutedFunction:
        return self

    def __dir__(self) -> list[str]:
        # wrapt lists the wrapped function's attributes only (spec'd mocks read dir()).
        return sorted({*dir(self.__wrapped__), "execute", "__signature__", "__wrapped__"})

    def __repr__(self) -> str:
        route = self._self_route
        names = route.static_names
        over = "providers read at each call" if names is None else f"providers {list(names)!r}"
        kind = ("async " if route.is_async else "") + ("stream" if route.stream else "function")
        return f"<routed {kind} {route.name} ({route.strategy_name} over {over})>"


if TYPE_CHECKING:

    class _BoundSlots:
        __self__: object
        _parent: RoutedFunction

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

    # Made without __init__ (see routed_class), whose subclass per function defines __call__.
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
        parent = self._parent
        return _SignatureSurrogate(parent.__wrapped__, parent._self_signature, parent._self_code)

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
        return _reduce_bound(self, cast(RoutedFunction, self._parent), self.__self__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _BoundRoutedMethod):
            return NotImplemented
        return other._parent is self._parent and other.__self__ is self.__self__

    def __hash__(self) -> int:
        return hash((id(self._parent), id(self.__self__)))

    def __repr__(self) -> str:
        return f"<bound routed method {self._parent.__qualname__} of {self.__self__!r}>"


def bind_first(wrapped: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """Bind a method called unbound to the instance its caller passed first (``C.m(c, x)``).

    A property, or a decorator above ``@routed`` (``tenacity.retry``, any ``functools.wraps``
    wrapper), calls the routed function itself with the instance first: the provider goes
    after it, not before.
    """
    if not args:
        name = getattr(wrapped, "__qualname__", wrapped)
        raise TypeError(f"{name}() called unbound without its instance (self)")
    return types.MethodType(wrapped, args[0]), args[1:]


def routed_class(
    is_async: bool, wrapped: Callable[..., Any], run: Runner, method: bool
) -> type[RoutedFunction]:
    """Return a subclass of RoutedFunction whose ``__call__`` routes straight to the core.

    Unbound, the wrapped callable already carries any binding (a plain function, a
    staticmethod's function or a bound method), so wrapt's per-call binding checks (a failed
    ``__self__`` lookup costs more than the routing decision) are not needed; and reading the
    route through the proxy would cost ~150 ns an attribute, so the closure holds it instead.
    ``method``: a def taking self first, called unbound with its instance (see
    :func:`bind_first`). A sync function bound to an instance (a method call) gets a
    ``_BoundRoutedMethod``; every other binding is wrapt's. One small class per routed
    function, made at decoration time.
    """
    if method:

        def __call__(self: RoutedFunction, *args: Any, **kwargs: Any) -> Any:
            bound, rest = bind_first(wrapped, args)
            return run(bound, rest, kwargs, False)

    else:

        def __call__(self: RoutedFunction, *args: Any, **kwargs: Any) -> Any:
            return run(wrapped, args, kwargs, False)

    namespace: dict[str, Any] = {"__call__": __call__}
    # Exactly a function: a wrapt-decorated one (which claims to be one) binds through wrapt.
    if not is_async and type(wrapped) is types.FunctionType:
        wrapt_get = RoutedFunction.__get__

        bind = types.MethodType

        def bound_call(self: _BoundRoutedMethod, *args: Any, **kwargs: Any) -> Any:
            return run(bind(wrapped, self.__self__), args, kwargs, False)

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

        def __get__(self: RoutedFunction, instance: object, owner: type | None = None) -> Any:
            if instance is None:
                return wrapt_get(self, instance, owner)
            made: _BoundRoutedMethod = new(bound)
            made.__self__ = instance
            made._parent = self  # type: ignore[assignment]
            return made

        namespace["__get__"] = __get__
    return type(RoutedFunction.__name__, (RoutedFunction,), namespace)
