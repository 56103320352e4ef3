"""The sync driver: performs a decision's steps, one attempt at a time, in the caller's thread.

Its fast lane serves a call whose first choice answers without building the per-call
:class:`Decision`: it asks the tracker, calls the provider, records the success and remembers
the route. At the first thing out of the ordinary (the provider cooling down, a failure, DEBUG
logging, a listener) the decision takes the call over, and the lane owns no rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from resilient_routing import _config

from . import report
from .decision import ATTEMPT, RAISE, RETURN, Decision
from .route import Route
from .steps import Args, Fn, Kwargs, ask_tracker, init_decision, new_decision

__all__ = ["drive", "runner"]

_DEBUG = logging.DEBUG

#: The runner of a sync, sequential route (see :data:`.runners.Runner`).
Runner = Callable[..., Any]


def runner(route: Route) -> Runner:
    """Return the runner of a sync, sequential route."""
    clock = route.clock
    plan_of = route.plan
    rest = route.rest
    static = route.lane
    providers, names = static or ((), ())

    def run(fn: Fn, args: Args, kwargs: Kwargs, want_result: bool) -> Any:
        config = _config._current
        context = route.context
        if context.config is not config:
            context = route.resolve(config)
        tracker, asks = context.tracker, context.asks
        if (
            static is not None
            and not context.listeners
            # Quiet at DEBUG: a verdict the logger cached saves asking it (see Context.levels).
            and (context.levels.get(_DEBUG) is False or not context.logger.isEnabledFor(_DEBUG))
        ):
            plan = None if rest is not None else plan_of(providers)
            i = 0 if plan is None else next(plan)
            name = names[i]
            ask = name in asks
            if ask and not tracker.is_available(name):
                attempted, raised, seconds = 0, None, tracker.cooldown_remaining(name)
            else:
                start = clock()
                try:
                    if kwargs:
                        response = fn(providers[i], *args, **kwargs)
                    elif len(args) == 1:  # the usual call (see drive())
                        response = fn(providers[i], args[0])
                    else:
                        response = fn(providers[i], *args)
                except Exception as exc:
                    # Judged after this block: what judging raises is not chained to it.
                    attempted, raised, seconds = 1, exc, clock() - start
                else:
                    latency = clock() - start
                    if ask:
                        tracker.record_success(name)
                    last = (route, i, response, latency)
                    # What Decision.returns() does, for the lane's tuple: a function call
                    # would cost ~5 % of a routed call here.
                    report.last_here.value = last
                    if report.running_loop() is not None:
                        report.last_in_task.set(last)
                    return report.quick_result(*last) if want_result else response
            d = new_decision(Decision)  # Decision(...) without the class call (see there)
            init_decision(d, route, context, want_result, static, plan, i, attempted)
        else:
            d = Decision(route, context, want_result)
            raised = seconds = None
        try:
            # What the lane saw of its first choice is the decision's first step.
            if seconds is None:
                step = None
            elif raised is None:
                step = d.cooling(seconds)
            else:
                step = d.failed(i, raised, seconds)
            return drive(d, tracker, fn, args, kwargs, step)
        finally:
            # A failure's traceback holds this frame: it must not keep the decision (which
            # holds the failures) alive, or every fallback would leave a cycle to collect.
            del d, raised

    return run


def drive(
    d: Decision,
    tracker: Any,
    call: Fn,
    args: Args,
    kwargs: Kwargs,
    step: int | None = None,
) -> Any:
    """Perform the steps of ``d`` until the call returns or raises; return what it returns.

    ``step``: the first step, when a fast lane handed the call over (None: ``d.start()``).
    """
    clock = d.route.clock
    try:
        if step is None:
            step = d.start()
        providers = d.providers
        while True:
            if step is ATTEMPT:
                i = d.index
                start = clock()
                try:
                    # Without keywords, no **kwargs: it would build an empty dict per call; with
                    # one argument, no *args: the provider before it builds a list and a tuple.
                    if kwargs:
                        response = call(providers[i], *args, **kwargs)
                    elif len(args) == 1:
                        response = call(providers[i], args[0])
                    else:
                        response = call(providers[i], *args)
                except Exception as exc:
                    step = d.failed(i, exc, clock() - start)
                    continue
                except BaseException:
                    d.abandoned(i, clock() - start)
                    raise
                step = d.succeeded(i, response, clock() - start)
            if step is RAISE:
                raise d.error
            if step is RETURN:
                return d.value
            step = ask_tracker(d, step, tracker)
    except BaseException as exc:
        d.finish(exc)
        raise
    finally:
        del d  # as in the runner
