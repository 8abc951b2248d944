"""The watchdog (parallel/watchdog.py): a guarded wait past its timeout calls on_timeout with
a message naming the wait; unguarded time, unlimited guards and time the process spent stopped
do not count."""
import threading
import time

import pytest

from minicaffe.parallel import watchdog as wd


@pytest.fixture(autouse=True)
def _fast_ticks(monkeypatch):
    monkeypatch.setattr(wd, "TICK", 0.02)


def _dog(timeout):
    fired = []
    event = threading.Event()

    def on_timeout(message):
        fired.append(message)
        event.set()

    return wd.Watchdog(timeout, on_timeout, lambda: " (iteration 7)"), fired, event


def test_a_wait_past_the_timeout_fires_once_naming_it():
    dog, fired, event = _dog(0.3)
    try:
        with dog.guard("the gradient allreduce"):
            assert event.wait(5)
            time.sleep(0.3)
        assert len(fired) == 1
        assert fired[0].startswith("no answer from the other replicas for 0 s in the gradient "
                                   "allreduce (iteration 7): a replica stopped responding")
    finally:
        dog.close()


def test_short_unguarded_and_unlimited_waits_do_not_fire():
    dog, fired, _ = _dog(0.3)
    try:
        with dog.guard("a short wait"):
            time.sleep(0.1)
        time.sleep(0.5)                       # not waiting for anyone
        with dog.guard("the root's test pass", timeout=None):
            time.sleep(0.5)
        assert fired == []
    finally:
        dog.close()
    off, fired, _ = _dog(0)
    assert off.timeout is None
    off.close()


def test_time_the_process_was_stopped_does_not_count(monkeypatch):
    """A tick that comes PAUSED seconds late (SIGSTOP ... SIGCONT) moves the deadline."""
    now = [1000.0]
    monkeypatch.setattr(wd, "clock", lambda: now[0])
    dog, fired, _ = _dog(5)
    try:
        with dog.guard("the gradient allreduce"):
            now[0] += 60                      # the whole process was stopped for a minute
            time.sleep(0.2)
            assert fired == []
            for _ in range(7):                # then really waits past the timeout
                now[0] += 1
                time.sleep(0.1)
            assert len(fired) == 1
    finally:
        dog.close()
