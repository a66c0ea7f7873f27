"""Reading ahead and writing behind in threads: order kept, errors raised, threads stopped."""

import threading
import time

import pytest

from fomm_space.overlap import WriteBehind, read_ahead


def test_read_ahead_keeps_order_and_raises_where_the_producer_failed():
    assert list(read_ahead(range(50), 3)) == list(range(50))

    def failing():
        yield from range(3)
        raise ValueError("damaged at 3")

    got = []
    with pytest.raises(ValueError, match="damaged at 3"):
        for item in read_ahead(failing(), 2):
            got.append(item)
    assert got == [0, 1, 2]


def test_closing_read_ahead_stops_its_thread_and_closes_the_source():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    before = threading.active_count()
    reader = read_ahead(endless(), 2)
    assert next(reader) == 0
    reader.close()
    assert closed.wait(2) and threading.active_count() == before


def test_write_behind_consumes_in_order_and_close_waits():
    seen = []
    behind = WriteBehind(lambda x: (time.sleep(0.001), seen.append(x)), depth=2)
    for i in range(30):
        behind.put(i)
    behind.close()
    assert seen == list(range(30))


def test_write_behind_raises_the_consumers_error_and_cancel_stops():
    def consume(x):
        if x == 2:
            raise OSError("disk full")

    behind = WriteBehind(consume, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(100):
            behind.put(i)
            time.sleep(0.01)
    behind.cancel()
    with pytest.raises(OSError, match="disk full"):
        _put_then_close(consume)  # the error also comes out of close()

    slow = WriteBehind(lambda x: time.sleep(0.05), depth=4)
    for i in range(4):
        slow.put(i)
    t0 = time.perf_counter()
    slow.cancel()
    assert time.perf_counter() - t0 < 0.5  # the waiting items were dropped


def _put_then_close(consume):
    behind = WriteBehind(consume)
    for i in range(3):
        behind.put(i)
    behind.close()
