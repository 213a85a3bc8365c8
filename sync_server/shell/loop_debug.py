"""asyncio debug mode for the server (TANDEM_ASYNCIO_DEBUG=1), with slow callbacks explained.

In debug mode asyncio logs ``Executing <handle> took 0.123 seconds`` for every callback
that ran longer than ``loop.slow_callback_duration`` (TANDEM_ASYNCIO_SLOW_CALLBACK_MS,
50 ms by default). That figure is wall time: on a loaded machine a 2 ms callback that the
kernel preempted for 60 ms is reported like one that computed for 60 ms. So each such
line here also says where the time went, measured around the same callback:

- ``cpu``: the event loop thread's own CPU time (``time.thread_time``): work this
  callback did, whatever the machine's load;
- ``runqueue``: time the thread was runnable but waiting for a core
  (``/proc/thread-self/schedstat``): CPU starvation by other processes;
- ``gc``: of ``cpu``, the CPU time Python's cyclic garbage collector took; it runs
  inside whichever callback allocates when a generation fills up, so that callback's own
  code is ``cpu`` minus ``gc``;
- ``blocked``: the rest: the thread slept inside the callback (a blocking call, or the
  GIL held by another of our threads);
- ``others``: CPU time the process's other threads used meanwhile. ``blocked`` with
  ``others`` about as large is another of our threads holding the GIL; ``blocked`` with
  ``others`` near zero is a blocking call, or a GIL holder that the kernel preempted
  (starvation again).

Own code (``cpu`` minus ``gc``), ``gc``, or ``blocked`` while ``others`` ran, past the
threshold, is this process's doing; ``runqueue`` is the machine's. Debug mode costs CPU itself (asyncio records where every handle was created),
so it is for tests and diagnosis, not production. TANDEM_ASYNCIO_DEBUG=timing logs the
same lines, in the same words, without debug mode (no creation tracebacks, no coroutine
origin tracking): what the callbacks cost when debug mode is not there to inflate them.
"""

from __future__ import annotations

import asyncio
import asyncio.constants
import asyncio.format_helpers
import collections
import gc
import logging
import os
import sys
import threading
import time
import traceback
from asyncio.base_events import _format_handle  # type: ignore[attr-defined]

_last = {"cpu": 0.0, "runqueue": 0.0, "wall": 0.0, "gc": 0.0, "others": 0.0}
_gc = {"total": 0.0, "since": 0.0, "thread": 0, "census": False}


_gc_log = logging.getLogger("tandem.gc")
DEBUG_STACK_DEPTH = 3  # frames of each creation traceback debug mode keeps (asyncio: 10)
GC_LOG_SECONDS = 0.01  # collections at least this long are logged one by one


def _gc_timer(phase: str, info: dict) -> None:
    if threading.get_ident() != _gc["thread"]:
        return  # another thread's collection: the loop's thread waits for the GIL (blocked)
    if phase == "start":
        _gc["since"] = time.thread_time()
    else:
        took = time.thread_time() - _gc["since"]
        _gc["total"] += took
        if took >= GC_LOG_SECONDS:  # the pause distribution (bench.gc_pauses reads these)
            _gc_log.info(
                "gc generation %d took %.4f s (collected %d)",
                info["generation"],
                took,
                info["collected"],
            )
            if info["generation"] == 2 and _gc["census"]:
                _census()


def _census() -> None:
    """What the collector tracks now (TANDEM_GC_CENSUS=1, for diagnosis: it walks every
    object, inside the callback that collected): the count, and the commonest types with
    how many references their containers hold (what a full collection visits)."""
    objects = gc.get_objects()
    kinds: collections.Counter[str] = collections.Counter()
    refs: collections.Counter[str] = collections.Counter()
    for o in objects:
        kind = f"{type(o).__module__}.{type(o).__qualname__}"
        kinds[kind] += 1
        if isinstance(o, list | dict | set | tuple | collections.deque):
            refs[kind] += len(o)
    _gc_log.info(
        "census: %d tracked (%d frozen), references held by containers %d; %s; largest %s",
        len(objects),
        gc.get_freeze_count(),
        sum(refs.values()),
        ", ".join(f"{k} {n}" for k, n in kinds.most_common(30)),
        sorted(
            (len(o), type(o).__name__)
            for o in objects
            if isinstance(o, list | dict | set | collections.deque)
        )[-8:],
    )


def _schedstat_reader():
    """A function returning this thread's run-queue wait in seconds, or None if unavailable."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return None

    def wait_s() -> float:
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9

    try:
        wait_s()
    except (OSError, ValueError, IndexError):
        os.close(fd)
        return None
    return wait_s


class _ExplainSlowCallbacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Executing %s took"):
            wall = _last["wall"]
            record.msg += " (cpu %.3f s, runqueue %.3f s, gc %.3f s, blocked %.3f s, others %.3f s)"
            record.args = (
                *(record.args or ()),  # type: ignore[misc]
                _last["cpu"],
                _last["runqueue"],
                _last["gc"],
                max(0.0, wall - _last["cpu"] - _last["runqueue"]),
                _last["others"],
            )
        return True


def _creation_stack(f=None, limit=None):  # type: ignore[no-untyped-def]
    """Where a future, task or handle was made, as debug mode records it: ``limit`` frames,
    oldest first, each a ``(filename, lineno, name, None)`` tuple. What asyncio reads of it
    is ``[-1][0]`` and ``[-1][1]`` ("created at file:line"), and ``traceback.format_list``
    (which takes such tuples and reads the source line only when it formats one).

    The standard ``StackSummary`` makes a tracked ``FrameSummary`` per frame and stats every
    frame's file (``linecache.checkcache``) each time, in every ``call_soon``: in a 250-client
    storm that was a fifth of the objects every full collection walked and a seventh of the
    loop's samples (py-spy, bench/README.md "Slow callbacks in the reconnect storm"). Tuples
    of strings and ints are untracked by the collector once they survive one collection.
    Its code also replaces ``traceback.extract_stack``'s (see ``limit_creation_stacks``),
    where it runs with the ``traceback`` module's globals: it uses only ``sys`` from them.
    """
    if f is None:
        f = sys._getframe().f_back
    stack: list[tuple[str, int, str, None]] = []
    while f is not None and len(stack) < limit:
        code = f.f_code
        stack.append((code.co_filename, f.f_lineno, code.co_name, None))
        f = f.f_back
    stack.reverse()
    return stack


def limit_creation_stacks(depth: int) -> None:
    """Keep ``depth`` frames of the stack where each future, task and handle was made, as
    plain tuples (``_creation_stack``).

    Debug mode records that stack for every one of them: handles through
    ``asyncio.format_helpers.extract_stack`` (``constants.DEBUG_STACK_DEPTH`` frames, 10),
    futures and tasks through the C ``_asyncio`` module, which calls
    ``traceback.extract_stack()`` with no limit at all (17 frames on average here). With 250
    clients connected those were 89,000 FrameSummary objects of the loop's 170,000 tracked
    objects, all of which every full collection walks: pauses of 50-150 ms in a reconnect
    storm (bench.gc_pauses). The frame that made the object and its nearest callers are what
    a diagnosis reads ("created at ..."). ``_asyncio`` holds on to ``traceback.extract_stack``
    itself, so in debug mode only that function is given ``_creation_stack``'s code, with
    ``depth`` as its default limit: every caller of it gets a list of tuples, which
    ``traceback.format_list`` formats as before.
    """
    # Final in typeshed: changed on purpose, in debug mode only
    asyncio.constants.DEBUG_STACK_DEPTH = depth  # type: ignore[misc]

    def handles(f=None, limit=None):  # type: ignore[no-untyped-def]
        return _creation_stack(f, depth if limit is None else limit)

    asyncio.format_helpers.extract_stack = handles
    traceback.extract_stack.__code__ = _creation_stack.__code__
    traceback.extract_stack.__defaults__ = (None, depth)


def enable(loop: asyncio.AbstractEventLoop, slow_callback_ms: float, full: bool = True) -> None:
    """Debug mode on ``loop`` (unless not ``full``); slow callbacks logged with their
    CPU / run-queue / gc / blocked split."""
    threshold = slow_callback_ms / 1000
    if full:  # the depth first: set_debug reads it for coroutines' origin tracking
        limit_creation_stacks(
            int(os.environ.get("TANDEM_ASYNCIO_DEBUG_STACK_DEPTH", DEBUG_STACK_DEPTH))
        )
        loop.set_debug(True)
    loop.slow_callback_duration = threshold
    log = logging.getLogger("asyncio")
    tandem = logging.getLogger("tandem")
    log.handlers[:] = list(tandem.handlers)  # same format and stream as the server's lines
    log.setLevel(logging.WARNING)
    log.propagate = False
    log.addFilter(_ExplainSlowCallbacks())

    _gc["thread"] = threading.get_ident()
    _gc["census"] = os.environ.get("TANDEM_GC_CENSUS", "") not in ("", "0")
    gc.callbacks.append(_gc_timer)
    runqueue = _schedstat_reader()
    original = asyncio.Handle._run

    def _run(self: asyncio.Handle) -> None:
        w0, c0, p0 = time.monotonic(), time.thread_time(), time.process_time()
        q0 = runqueue() if runqueue else 0.0
        g0 = _gc["total"]
        try:
            original(self)
        finally:
            _last["cpu"] = time.thread_time() - c0
            _last["others"] = max(0.0, time.process_time() - p0 - _last["cpu"])
            _last["runqueue"] = (runqueue() - q0) if runqueue else 0.0
            _last["wall"] = time.monotonic() - w0
            _last["gc"] = _gc["total"] - g0
            if not full and _last["wall"] >= threshold:
                log.warning("Executing %s took %.3f seconds", _format_handle(self), _last["wall"])

    asyncio.Handle._run = _run  # type: ignore[method-assign]
    tandem.info(
        "asyncio %s on: callbacks over %.0f ms are logged",
        "debug mode" if full else "callback timing",
        slow_callback_ms,
    )
