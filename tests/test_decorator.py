"""The @routed decorator on every kind of callable, and its validation at decoration time."""

import asyncio
import copy
import functools
import inspect
import logging
import pickle
import types
import typing
import unittest.mock
import weakref
from typing import Any

import pytest
import tenacity
import wrapt

from resilient_routing import (
    InMemoryCooldownTracker,
    InvalidConfigError,
    RouteResult,
    execute,
    execute_async,
    routed,
)
from resilient_routing.strategies import RoundRobin


class Down(Exception):
    pass


def test_plain_function_signature_and_metadata() -> None:
    """The provider parameter is hidden; name, docstring and annotations are kept."""

    @routed(providers=["a"])
    def generate(provider: str, prompt: str, *, size: int = 1) -> str:
        """Generate an image."""
        return f"{provider}:{prompt}:{size}"

    assert str(inspect.signature(generate)) == "(prompt: str, *, size: int = 1) -> str"
    assert generate.__name__ == "generate"
    assert generate.__doc__ == "Generate an image."
    assert generate("cat", size=2) == "a:cat:2"
    assert inspect.unwrap(generate).__name__ == "generate"


def test_execute_returns_route_result() -> None:
    """fn.execute(...) takes the same arguments and returns a RouteResult."""

    @routed(providers=["a", "b"])
    def generate(provider: str, prompt: str) -> str:
        if provider == "a":
            raise Down()
        return prompt * 2

    result = generate.execute("x")
    assert isinstance(result, RouteResult)
    assert (result.response, result.provider, result.attempt) == ("xx", "b", 2)


class Client:
    """A class with routed methods of every kind."""

    prefix = "cls"

    def __init__(self, tag: str) -> None:
        self.tag = tag

    @routed(providers=["a", "b"])
    def method(self, provider: str, x: int) -> str:
        """A method."""
        if provider == "a":
            raise Down()
        return f"{self.tag}:{provider}:{x}"

    @routed(providers=["a", "b"])
    @classmethod
    def cmethod(cls, provider: str, x: int) -> str:
        return f"{cls.prefix}:{provider}:{x}"

    @routed(providers=["a", "b"])
    @staticmethod
    def smethod(provider: str, x: int) -> str:
        return f"static:{provider}:{x}"

    @routed(providers=["a", "b"])
    async def amethod(self, provider: str, x: int) -> str:
        await asyncio.sleep(0)
        return f"{self.tag}:{provider}:{x}"


class SubClient(Client):
    prefix = "sub"


@routed(providers=["a", "b"], cooldown=None)
def module_generate(provider: str, x: int) -> str:
    """A module-level routed function: picklable by reference, like a function."""
    return f"{provider}:{x}"


class Holder:
    def __init__(self) -> None:
        self.handler = module_generate


def test_instance_method() -> None:
    """Self is bound; the provider comes next; bound .execute works."""
    c = Client("t")
    assert c.method(1) == "t:b:1"
    result = c.method.execute(2)
    assert result.response == "t:b:2" and result.failures[0][0] == "a"
    assert Client.method(c, 3) == "t:b:3"
    assert str(inspect.signature(c.method)) == "(x: int) -> str"
    assert str(inspect.signature(Client.method)) == "(self, x: int) -> str"
    assert c.method.__doc__ == "A method."


def test_classmethod() -> None:
    """Cls is bound (subclasses too); .execute works on the class and on instances."""
    assert Client.cmethod(1) == "cls:a:1"
    assert SubClient.cmethod(1) == "sub:a:1"
    assert Client("t").cmethod(2) == "cls:a:2"
    assert Client.cmethod.execute(3).response == "cls:a:3"
    assert str(inspect.signature(Client.cmethod)) == "(x: int) -> str"


def test_staticmethod() -> None:
    """A staticmethod gets the provider first, from the class or an instance."""
    assert Client.smethod(1) == "static:a:1"
    assert Client("t").smethod.execute(2).response == "static:a:2"
    assert str(inspect.signature(Client.smethod)) == "(x: int) -> str"


async def test_async_method() -> None:
    """An async method awaits; bound .execute returns an awaitable RouteResult."""
    c = Client("t")
    assert await c.amethod(1) == "t:a:1"
    assert (await c.amethod.execute(2)).response == "t:a:2"
    assert inspect.iscoroutinefunction(Client.amethod)


async def test_async_function() -> None:
    """An async def routed function is a coroutine function with the provider hidden."""

    @routed(providers=["a", "b"])
    async def fetch(provider: str, url: str) -> str:
        """Fetch."""
        if provider == "a":
            raise Down()
        return f"{provider}:{url}"

    assert inspect.iscoroutinefunction(fetch)
    assert str(inspect.signature(fetch)) == "(url: str) -> str"
    assert await fetch("u") == "b:u"
    assert (await fetch.execute("v")).attempt == 2


def test_methods_of_two_instances_share_routing_state() -> None:
    """The strategy belongs to the routed function, not to each instance."""

    class Svc:
        @routed(providers=["a", "b", "c"], strategy="round_robin")
        def call(self, provider: str) -> str:
            return provider

    one, two = Svc(), Svc()
    assert [one.call(), two.call(), one.call(), two.call()] == ["a", "b", "c", "a"]


def test_kwargs_and_defaults_pass_through() -> None:
    """Positional, keyword and default arguments reach the function unchanged."""

    @routed(providers=["p"])
    def fn(
        provider: str, a: int, b: int = 2, *rest: int, c: int = 3, **extra: Any
    ) -> tuple[Any, ...]:
        return (provider, a, b, rest, c, extra)

    assert fn(1, 5, 6, 7, c=9, z=0) == ("p", 1, 5, (6, 7), 9, {"z": 0})
    assert list(inspect.signature(fn).parameters) == ["a", "b", "rest", "c", "extra"]


def test_varargs_function_takes_provider_from_args() -> None:
    """A function written as *args still receives the provider first."""

    @routed(providers=["p"])
    def fn(*args: Any) -> tuple[Any, ...]:
        return args

    assert fn(1) == ("p", 1)


def test_function_without_provider_parameter_is_refused() -> None:
    """A function that cannot take the provider is refused at decoration."""
    with pytest.raises(InvalidConfigError, match="first positional parameter"):

        @routed(providers=["a"])
        def fn() -> None:
            pass


def test_function_with_keyword_only_parameters_is_refused() -> None:
    """A function whose first parameter is keyword-only cannot take the provider."""
    with pytest.raises(InvalidConfigError, match="first positional parameter"):

        @routed(providers=["a"])
        def fn(*, provider: str) -> None:
            pass


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"strategy": "nope"},
            r"unknown strategy 'nope': expected one of 'fallback', 'hedged', 'least_busy'",
        ),
        ({"strategy": object()}, "order"),
        ({"providers": "abc"}, "sequence of providers"),
        ({"providers": 42}, "sequence of providers"),
        ({"providers": [1]}, "has no name"),
        ({"providers": [type("P", (), {"name": 3})()]}, "expected a str"),
        ({"cooldown": "memory"}, "CooldownTracker"),
        ({"exempt": "laozhang"}, "collection of provider names"),
        ({"exempt": [1]}, "provider names"),
        ({"fallback_on": 3}, "fallback_on"),
        ({"fallback_on": (Down, 3)}, "exception types only"),
        ({"fallback_on": int}, "fallback_on"),
        ({"fallback_on": KeyboardInterrupt}, "not an Exception: it always propagates"),
        ({"fallback_on": (ValueError, SystemExit)}, "names SystemExit"),
        ({"cooldown_on": GeneratorExit}, "cooldown_on names GeneratorExit"),
        ({"cooldown": InMemoryCooldownTracker}, r"instance such as InMemoryCooldownTracker\(\)"),
        ({"logger": "app"}, "logging.Logger"),
    ],
)
def test_bad_options_fail_at_decoration(options: dict[str, Any], message: str) -> None:
    """routed(...) itself raises InvalidConfigError naming the bad value and what was expected."""
    options.setdefault("providers", ["a"])
    with pytest.raises(InvalidConfigError, match=message):
        routed(**options)


def test_callable_source_with_bad_result_fails_at_call() -> None:
    """A provider callable returning a non-sequence or unnamed providers fails clearly."""
    source: list[Any] = ["ab"]

    @routed(providers=lambda: source[0])
    def fn(provider: Any) -> Any:
        return provider

    with pytest.raises(InvalidConfigError, match="providers callable"):
        fn()
    source[0] = [object()]
    with pytest.raises(InvalidConfigError, match="has no name"):
        fn()


def test_decorating_a_non_callable_is_refused() -> None:
    """Only functions can be routed."""
    with pytest.raises(InvalidConfigError, match="decorates a function"):
        routed(providers=["a"])(42)  # type: ignore[call-overload]


def test_strategy_object_is_used_as_given() -> None:
    """A strategy instance is used (and shared) as it is."""
    rr = RoundRobin()

    @routed(providers=["a", "b"], strategy=rr)
    def one(provider: str) -> str:
        return provider

    @routed(providers=["a", "b"], strategy=rr)
    def two(provider: str) -> str:
        return provider

    assert [one(), two(), one(), two()] == ["a", "b", "a", "b"]


def test_named_strategy_is_fresh_per_function() -> None:
    """Two functions naming round_robin each get their own counter."""

    @routed(providers=["a", "b"], strategy="round_robin")
    def one(provider: str) -> str:
        return provider

    @routed(providers=["a", "b"], strategy="round_robin")
    def two(provider: str) -> str:
        return provider

    assert [one(), two(), one(), two()] == ["a", "a", "b", "b"]


def test_routed_function_keeps_wrapped_attributes() -> None:
    """Attributes set on the function stay reachable through the routed one."""

    def fn(provider: str) -> str:
        return provider

    fn.custom = "kept"  # type: ignore[attr-defined]
    wrapped = routed(providers=["a"])(fn)
    assert wrapped.custom == "kept"  # type: ignore[attr-defined]
    assert wrapped.__wrapped__ is fn  # type: ignore[attr-defined]


def test_library_logger_has_no_output_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """A library must not print through logging's last-resort handler when unconfigured."""
    assert any(
        isinstance(h, logging.NullHandler) for h in logging.getLogger("resilient_routing").handlers
    )


def test_one_shot_iterables_for_exempt_and_listeners() -> None:
    """Generators given to exempt= and listeners= are read once, not used up by validation."""
    from resilient_routing import InMemoryCooldownTracker

    tracker = InMemoryCooldownTracker(failure_threshold=1)
    seen: list[str] = []

    class Listener:
        def on_event(self, event: Any) -> None:
            seen.append(event.kind)

    @routed(
        providers=["a", "b"],
        cooldown=tracker,
        exempt=(n for n in ["a"]),
        listeners=(x for x in [Listener()]),
    )
    def call(provider: str) -> str:
        if provider == "a":
            raise Down()
        return provider

    assert call() == "b"
    assert tracker.is_available("a"), "a stayed exempt"
    assert "call_started" in seen


def test_strategy_class_instead_of_instance_is_refused() -> None:
    """Passing the class where an instance is expected fails at decoration, saying so."""
    with pytest.raises(InvalidConfigError, match=r"such as RoundRobin\(\), got the class"):
        routed(providers=["a"], strategy=RoundRobin)  # type: ignore[arg-type]


def test_execute_shows_the_visible_signature() -> None:
    """fn.execute and obj.method.execute hide the provider parameter too."""

    @routed(providers=["a"])
    def fn(provider: str, x: int) -> int:
        return x

    assert list(inspect.signature(fn.execute).parameters) == ["x"]
    assert list(inspect.signature(Client("t").method.execute).parameters) == ["x"]


def test_signature_error_shows_the_signature() -> None:
    """The refusal of a function without a provider parameter shows what it got."""
    with pytest.raises(InvalidConfigError, match=r"got \(\*, name: str\)"):

        @routed(providers=["a"])
        def fn(*, name: str) -> None:
            pass


def test_bound_method_reads_like_the_bound_method() -> None:
    """instance.method shows the method's names, doc, instance, function and signature."""
    c, other = Client("t"), Client("u")
    bound = c.method
    assert bound.__self__ is c
    assert bound.__name__ == "method" and bound.__qualname__ == "Client.method"
    assert bound.__doc__ == "A method." and bound.__module__ == __name__
    assert bound.__wrapped__.__self__ is c
    assert str(inspect.signature(bound.__func__)) == "(self, x: int) -> str"
    assert bound == c.method and hash(bound) == hash(c.method)
    assert bound != other.method and bound != Client.cmethod
    assert repr(bound).startswith("<bound routed method Client.method of <")
    with pytest.raises(AttributeError):
        bound.nope  # noqa: B018


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 2},
        {"timeout": 30.0},
        {"providers": lambda: ["a", "b"]},
        {"strategy": "least_latency"},
        {"listeners": [type("NoOp", (), {"on_event": lambda self, event: None})()]},
    ],
    ids=["max_attempts", "timeout", "callable providers", "least_latency", "listeners"],
)
def test_bound_method_on_every_kind_of_route(options: dict[str, Any]) -> None:
    """Routes that never take the quick path bind methods the same way."""

    class Service:
        @routed(**{"providers": ["a", "b"], "cooldown": None, **options})
        def call(self, provider: str, x: int) -> tuple[Any, ...]:
            if provider == "a":
                raise Down()
            return (self, provider, x)

    s = Service()
    assert s.call(1) == (s, "b", 1)
    assert s.call.execute(2).response == (s, "b", 2)
    assert Service.call(s, 3) == (s, "b", 3)


def test_wrapt_decorator_under_routed_keeps_its_instance() -> None:
    """A wrapt decorator below @routed still sees the instance (wrapt binds that method)."""
    seen: list[object] = []

    @wrapt.decorator
    def audit(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(instance)
        return wrapped(*args, **kwargs)

    class Service:
        @routed(providers=["a"], cooldown=None)
        @audit
        def call(self, provider: str, x: int) -> str:
            return f"{provider}:{x}"

    s = Service()
    assert s.call(1) == "a:1"
    assert seen == [s]


def test_bound_method_is_a_method_to_introspection() -> None:
    """ismethod, annotations, weak references, copies and pickles work as for methods."""
    c = Client("t")
    bound = c.method
    assert inspect.ismethod(bound) and isinstance(bound, types.MethodType)
    assert typing.get_type_hints(bound) == {"provider": str, "x": int, "return": str}
    ref = weakref.ref(bound)
    assert ref() is bound
    assert bound.__get__(Client("u"))(1) == "t:b:1"  # binds no further, still routed
    assert copy.copy(bound) == bound
    assert pickle.loads(pickle.dumps(bound))(1) == "t:b:1"

    class Star:
        @routed(providers=["p"], cooldown=None)
        def call(*args: Any) -> tuple[Any, ...]:
            return args

    star = Star()
    assert star.call(1) == (star, "p", 1)
    assert list(inspect.signature(star.call).parameters) == ["args"]


def test_bound_method_copies_and_pickles_only_as_itself() -> None:
    """Copy returns it, deepcopy rebinds to the copied instance; an alias refuses pickling."""
    c = Client("t")
    assert copy.copy(c.method) is not None and copy.copy(c.method) == c.method
    deep = copy.deepcopy(c.method)
    assert deep.__self__ is not c and deep(1) == "t:b:1"
    assert "execute" in dir(c.method) and "__self__" in dir(c.method)
    assert unittest.mock.Mock(spec=c.method).execute is not None

    class Aliased:
        def _impl(self, provider: str, x: int) -> str:
            return provider

        call = routed(providers=["a"], cooldown=None)(_impl)

    with pytest.raises(TypeError, match="does not hold it as '_impl'"):
        pickle.dumps(Aliased().call)


def test_a_routed_function_copies_and_pickles_as_a_function_does() -> None:
    """By reference: multiprocessing and ProcessPoolExecutor pass functions so; copies are it."""
    assert pickle.loads(pickle.dumps(module_generate)) is module_generate
    assert copy.copy(module_generate) is module_generate
    assert copy.deepcopy(module_generate) is module_generate
    assert copy.deepcopy(Holder()).handler is module_generate
    assert unittest.mock.Mock(spec=module_generate).execute is not None
    assert {"execute", "__wrapped__", "__doc__"} <= set(dir(module_generate))


def test_an_async_bound_method_copies_and_pickles_as_itself() -> None:
    """As the sync bound method does: copy is it, deepcopy rebinds, pickle by attribute."""
    c = Client("t")
    assert copy.copy(c.amethod) == c.amethod
    deep = copy.deepcopy(c.amethod)
    assert deep.__self__ is not c and asyncio.run(deep(1)) == "t:a:1"
    assert asyncio.run(pickle.loads(pickle.dumps(c.amethod))(2)) == "t:a:2"
    assert unittest.mock.Mock(spec=c.amethod).execute is not None


def test_repr_names_the_function_its_strategy_and_providers() -> None:
    """repr() of a routed function says what it is, bound or not."""

    @routed(providers=["a", "b"], strategy="round_robin")
    def generate(provider: str, prompt: str) -> str:
        return prompt

    assert repr(generate) == (
        "<routed function test_repr_names_the_function_its_strategy_and_providers.<locals>"
        ".generate (round_robin over providers ['a', 'b'])>"
    )

    class Images:
        @routed(providers=lambda: ["a"])
        async def make(self, provider: str) -> str:
            return provider

    assert repr(Images.make).startswith("<routed async function ")
    assert repr(Images.make).endswith("Images.make (fallback over providers read at each call)>")


class AsyncClient:
    """A client object whose ``__call__`` is a coroutine function."""

    async def __call__(self, provider: str, x: int) -> str:
        if provider == "a":
            raise Down()
        return f"{provider}:{x}"


class StreamingClient:
    """A client object whose ``__call__`` is a generator function."""

    def __call__(self, provider: str) -> Any:
        if provider == "a":
            raise Down()
        yield provider


def test_a_callable_object_is_routed_as_its_call_is() -> None:
    """An object's ``async def __call__`` makes an async route, a generator one a stream."""
    generate = routed(providers=["a", "b"], cooldown=None)(AsyncClient())
    assert asyncio.run(generate(1)) == "b:1"
    stream = routed(providers=["a", "b"], cooldown=None)(StreamingClient())
    assert list(stream()) == ["b"]
    with pytest.raises(InvalidConfigError, match="await execute_async"):
        execute(["a", "b"], AsyncClient(), cooldown=None)
    result = asyncio.run(execute_async(["a", "b"], functools.partial(AsyncClient(), x=2)))
    assert result.response == "b:2"


class Streams:
    @routed(providers=["a"], cooldown=None, stream=True)
    async def sdk(self, provider: str) -> Any:
        return _items(provider)


async def _items(provider: str) -> Any:
    yield provider


@routed(providers=["a"], cooldown=None, stream=True)
async def sdk_stream(provider: str) -> Any:
    return _items(provider)


@routed(providers=["a"], cooldown=None)
async def agen_route(provider: str) -> Any:
    yield provider


@routed(providers=["a"], cooldown=None)
def gen_route(provider: str) -> Any:
    yield provider


def test_introspection_says_what_a_call_returns() -> None:
    """A stream of an async def is an async generator's call; .execute returns a RouteResult."""
    for stream in (sdk_stream, Streams().sdk, agen_route):
        assert inspect.isasyncgenfunction(stream) and not inspect.iscoroutinefunction(stream)
        assert inspect.iscoroutinefunction(stream.execute)
        assert not inspect.isasyncgenfunction(stream.execute)
    assert inspect.isgeneratorfunction(gen_route)
    assert not inspect.isgeneratorfunction(gen_route.execute)
    assert inspect.iscoroutinefunction(Client("t").amethod.execute)
    assert str(inspect.signature(sdk_stream)) == "() -> Any"


def test_tenacity_above_an_async_stream_returns_the_stream() -> None:
    """Tenacity asks inspect: it takes the route for what it is and hands the stream back."""
    retried = tenacity.retry(stop=tenacity.stop_after_attempt(2))(sdk_stream)

    async def consume() -> list[str]:
        return [item async for item in retried()]

    assert asyncio.run(consume()) == ["a"]


def test_an_async_mock_is_routed_as_async() -> None:
    """An AsyncMock says it is a coroutine function: tests replace providers with one."""
    provider = unittest.mock.AsyncMock(side_effect=lambda name: f"{name}!")
    generate = routed(providers=["a", "b"], cooldown=None)(provider)
    assert asyncio.run(generate()) == "a!"
    with pytest.raises(InvalidConfigError, match="await execute_async"):
        execute(["a"], unittest.mock.AsyncMock(), cooldown=None)


def test_a_routed_method_read_on_its_class_pickles_as_its_attribute() -> None:
    """Client.method, Client.cmethod, Client.smethod pickle by reference, as functions do."""
    for name in ("method", "cmethod", "smethod"):
        routed_attribute = getattr(Client, name)
        assert pickle.loads(pickle.dumps(routed_attribute)) == routed_attribute, name
    assert pickle.loads(pickle.dumps(Client.smethod))(1) == "static:a:1"
