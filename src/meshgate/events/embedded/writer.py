"""The embedded log's writer: one thread that runs every file change in order.

It takes two kinds of work from one queue: calls (``submit``, an ``Executor`` like a one-thread
pool: open, create, delete, retention, offset commits, close) and appends (``append``). The
appends found queued together, up to the next call, go to ``commit`` as one batch (one group
commit round); the thread then looks at the queue again at once, so a round starts as soon as
the previous one is durable, not when the event loop has heard of it. Everything still runs in
submission order on this one thread, so calls and appends never race on a file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from queue import Empty, SimpleQueue
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_STOP = object()


class _Call:
    __slots__ = ("args", "func", "future", "kwargs")

    def __init__(
        self, future: Future[Any], func: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        self.future = future
        self.func = func
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.func(*self.args, **self.kwargs)
        except BaseException as exc:  # handed to whoever waits on the future
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


class SerialWriter(Executor):
    """``commit(batch)`` runs on the thread for each batch of appends (it must not raise)."""

    def __init__(self, name: str) -> None:
        self.commit: Callable[[list[Any]], None] | None = None
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: Future[T] = Future()
        self._queue.put(_Call(future, fn, args, kwargs))
        return future

    def append(self, item: object) -> None:
        """Queue an append for the next commit round."""
        if self._closed:
            raise RuntimeError("cannot append after shutdown")
        self._queue.put(item)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop after what is queued (``cancel_futures``: calls not started are cancelled)."""
        if not self._closed:
            self._closed = True
            if cancel_futures:
                kept = []
                while (item := _next(self._queue)) is not None:
                    if isinstance(item, _Call):
                        item.future.cancel()
                    else:
                        kept.append(item)  # an append is never dropped
                for item in kept:
                    self._queue.put(item)
            self._queue.put(_STOP)
        if wait and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        queue = self._queue
        stopping = False
        while True:
            item = queue.get() if not stopping else _next(queue)
            if item is None:
                return
            batch: list[Any] = []
            while True:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, _Call):
                    self._commit(batch)
                    batch = []
                    item.run()
                else:
                    batch.append(item)
                item = _next(queue)
                if item is None:
                    break
            self._commit(batch)
            if stopping and queue.empty():
                return

    def _commit(self, batch: list[Any]) -> None:
        if batch:
            assert self.commit is not None, "appends before a commit function was set"
            self.commit(batch)


def _next(queue: SimpleQueue[Any]) -> Any:
    try:
        return queue.get_nowait()
    except Empty:
        return None
