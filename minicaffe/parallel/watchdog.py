"""Watchdog: end the job when this process waits too long for the other replicas.

A collective operation (allreduce, broadcast) blocks until every replica has joined it. When a
replica dies the launcher (mpirun) usually ends the job at once; when it does not (a launcher
that keeps going, a replica that hangs or is stopped), the others would wait forever. Every
blocking wait of minicaffe.parallel runs inside `watchdog.guard(what)`; a thread checks twice
a second and calls `on_timeout(message)` (MPI_Abort in practice) once a guarded wait has lasted
`timeout` seconds.

Time during which this whole process was stopped (SIGSTOP: a debugger, a job scheduler that
pauses and resumes jobs) is not counted: a tick that comes much later than it was due shifts
the deadline by the gap, so a job paused and resumed as a whole goes on.
"""
import contextlib
import threading
import time

TICK = 0.5          # seconds between checks
clock = time.monotonic
PAUSED = 2.0        # a tick this much later than due means the process was stopped meanwhile


class Watchdog:
    """Calls `on_timeout(message)` from its thread when a `guard` lasts over its timeout.

    timeout: seconds (None or <= 0: never); describe(): a string appended to messages (the
    iteration, the rank...). Use `close()` to stop the thread.
    """

    def __init__(self, timeout, on_timeout, describe=lambda: ""):
        self.timeout = timeout if timeout and timeout > 0 else None
        self._on_timeout = on_timeout
        self._describe = describe
        self._lock = threading.Lock()
        self._current = None            # [what, start, timeout] of the wait in progress
        self._stop = threading.Event()
        self._fired = False
        self._thread = threading.Thread(target=self._run, name="minicaffe-watchdog", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def guard(self, what, timeout="default"):
        """Mark a blocking wait for `what`; `timeout` overrides the default (None: unlimited,
        e.g. while the root alone tests or writes a snapshot)."""
        limit = self.timeout if timeout == "default" else timeout
        entry = [what, clock(), limit]
        with self._lock:
            outer, self._current = self._current, entry
        try:
            yield
        finally:
            with self._lock:
                self._current = outer

    def _run(self):
        last = clock()
        while not self._stop.wait(TICK):
            now = clock()
            gap = now - last - TICK
            last = now
            with self._lock:
                entry = self._current
                if entry is None:
                    continue
                if gap > PAUSED:            # this process was stopped: that time is not waiting
                    entry[1] += gap
                what, start, limit = entry
            if limit is None or now - start < limit or self._fired:
                continue
            self._fired = True
            extra = self._describe()
            self._on_timeout(f"no answer from the other replicas for {now - start:.0f} s in "
                             f"{what}{extra}: a replica stopped responding (killed, hung or "
                             "stopped); ending the job")

    def close(self):
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
