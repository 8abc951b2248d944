"""Background prefetching of batches: `Prefetcher(produce, depth)`.

A daemon thread calls `produce()` and keeps up to `depth` results in a bounded queue, so
reading and transforming the next batch overlaps the net's forward/backward (NumPy and the
BLAS release the GIL). Results come out in production order, so a seeded producer gives the
same batches as calling it directly. An exception in `produce` is re-raised by the next `get()`
in the consumer; `close()` stops the thread and waits for it.
"""
import queue
import threading


class _Failure:
    def __init__(self, exc):
        self.exc = exc


class Prefetcher:
    """Runs `produce()` ahead of the consumer; `get()` returns the next result."""

    def __init__(self, produce, depth=2, name="prefetch"):
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self._produce = produce
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._failed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                item = self._produce()
            except BaseException as exc:    # handed to the consumer, which re-raises it
                item = _Failure(exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if isinstance(item, _Failure):
                return

    def get(self, timeout=None):
        """The next result; re-raises the producer's exception (and every later call raises
        it again, since the producer has stopped)."""
        if self._failed is not False:
            raise self._failed
        if self._stop.is_set():
            raise RuntimeError("Prefetcher.get() after close()")
        while True:
            try:
                item = self._queue.get(timeout=0.1 if timeout is None else timeout)
                break
            except queue.Empty:
                if timeout is not None:
                    raise TimeoutError(f"no batch within {timeout} s") from None
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("prefetch thread stopped without a result") from None
        if isinstance(item, _Failure):
            self._failed = item.exc
            raise item.exc
        return item

    def close(self):
        """Stop the thread (it finishes the item it is producing) and wait for it."""
        self._stop.set()
        while True:             # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def alive(self):
        return self._thread.is_alive()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._stop.set()
        except AttributeError:
            pass
