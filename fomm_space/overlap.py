"""Stages of a run side by side: reading ahead, and writing behind, the engine.

Decoding + cropping, the engine, and composition + encoding each take their turn per
frame when run in one thread; here the first runs ahead in a thread of its own
(:func:`read_ahead`) and the last behind (:class:`WriteBehind`), each through a bounded
queue, so the slowest stage sets the pace and memory holds a few frames, not the clip.
Errors reach the caller: a failed stage raises its error where the run waits on it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()
_POLL_S = 0.1


def read_ahead(items: Iterable[T], depth: int) -> Iterator[T]:
    """``items`` as they are, produced in a thread up to ``depth`` ahead of the reader.

    An error while producing is raised here, at the item it stopped at. Closing this
    generator (or dropping it) stops the thread.
    """
    buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    source = iter(items)

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=_POLL_S)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            outcome = (_END, None)
        except BaseException as e:  # noqa: BLE001 - handed to the reader, raised there
            outcome = (_END, e)
        finally:
            close = getattr(source, "close", None)
            if close is not None:  # a generator's cleanup (an ffmpeg reader) runs now, in this thread
                close()
        while not stop.is_set():
            try:
                buffer.put(outcome, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="fomm-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()


class WriteBehind(Generic[T]):
    """Calls ``consume(item)`` in a thread for each item :meth:`put`, in order, with at
    most ``depth`` items waiting.

    :meth:`put` and :meth:`close` raise the error ``consume`` failed with (the items
    after it are dropped); :meth:`cancel` stops without waiting for the rest.
    """

    def __init__(self, consume: Callable[[T], None], depth: int = 2):
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fomm-write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END or self._stop.is_set():
                return
            if self._error is None:
                try:
                    self._consume(item)
                except BaseException as e:  # noqa: BLE001 - raised in the caller's thread
                    self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        """Queue ``item``; waits while ``depth`` items wait."""
        while True:
            self._raise()
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait until every item is consumed; raise the error ``consume`` failed with."""
        try:
            self.put(_END)
        except BaseException:
            self.cancel()
            raise
        self._thread.join()
        self._raise()

    def cancel(self) -> None:
        """Stop: the items waiting are dropped, the one being consumed is finished."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.put_nowait(_END)
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
            self._thread.join(timeout=_POLL_S)
