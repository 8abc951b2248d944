"""The run log of a solver: `<snapshot_prefix>_log.jsonl` (curves) and `_summary.json` (result).

One JSON object per line. The first line a solver writes is a header,

    {"kind": "run", "run": 1, "started": "2026-12-07T04:40:00", "iter": 0, "solver": "...",
     "net": "LeNet", "weights": ["base.caffemodel"], "resumed_from": null}

followed by the records of that run: `{"kind": "train", "iter", "loss", "lr", "sparsity"}` at
each display and `{"kind": "test", "iter", "net", "outputs", "sparsity"}` at each test. A run
that starts from scratch (or from `--weights`) truncates the file, so a log never mixes two
trainings; a run restored from a `.solverstate` appends a new header with `resumed_from` set and
the next run number, a clearly marked continuation of the same training. `read_log` splits a
file back into its runs.

`write_summary` writes `<snapshot_prefix>_summary.json` when `solve()` ends: iterations, wall
time, the last smoothed loss, the last test outputs, the structure left (sparsity rows and FLOPs)
and the files the run wrote.

A run killed (SIGKILL) or stopped by a full disk in the middle of an append leaves its last
record cut short. The resumed run starts its header on a new line after it, and `read_log`
skips such a record with a warning naming the line (docs/RELIABILITY.md): only the file's last
line when it has no newline, or the line just before a resumed run's header. Any other line that
is not JSON is a `DataError` naming the file and line.
"""
import datetime
import json
import logging
import os

from minicaffe.errors import DataError
from minicaffe.files import write_atomic

log = logging.getLogger("minicaffe.solver")


def _now():
    return datetime.datetime.now().isoformat(timespec="seconds")


def _write_atomic(path, text):
    """Write `text` to `path` whole (files.write_atomic)."""
    write_atomic(path, lambda f: f.write(text))


class RunLog:
    """Appends records of one solver run to `path` (None: records are dropped).

    `info` (a dict the caller may fill before the first record: "weights", "solver") goes
    into the header. `resumed_from` (set by Solver.restore) makes the header a continuation.
    """

    def __init__(self, path):
        self.path = path
        self.info = {}
        self.resumed_from = None
        self.started = None
        self._open = False

    def _header(self, solver):
        run = 1
        if self.resumed_from is not None and os.path.exists(self.path):
            run = 1 + sum(1 for r in _records(self.path) if r.get("kind") == "run")
        return {"kind": "run", "run": run, "started": self.started or _now(),
                "iter": int(solver.iter), "solver": solver.path,
                "net": getattr(solver.net, "name", "") or "", "resumed_from": self.resumed_from,
                **self.info}

    def start(self, solver):
        """Note the wall-clock start of this run (the header's `started`)."""
        if self.started is None:
            self.started = _now()

    def append(self, solver, record):
        """Write `record` (a dict) as one line; the first call writes the header first."""
        if self.path is None:
            return
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        lines = []
        mode = "a"
        if not self._open:
            if self.resumed_from is None:
                mode = "w"                       # a fresh run starts a fresh log
            lines.append(self._header(solver))
            self._open = True
        lines.append(record)
        text = "".join(json.dumps(r) + "\n" for r in lines)
        if mode == "a" and not _ends_a_line(self.path):
            text = "\n" + text                  # a record cut by a killed run stays alone
        with open(self.path, mode) as f:
            f.write(text)

    def summary_path(self):
        if self.path is None:
            return None
        base = self.path[:-len("_log.jsonl")] if self.path.endswith("_log.jsonl") else self.path
        return base + "_summary.json"

    def write_summary(self, solver, summary):
        """Write `summary` (a dict) to `<prefix>_summary.json`; returns its path or None."""
        path = self.summary_path()
        if path is None:
            return None
        body = {"started": self.started, "finished": _now(), "solver": solver.path,
                "net": getattr(solver.net, "name", "") or "", "log": self.path,
                "resumed_from": self.resumed_from, **self.info, **summary}
        _write_atomic(path, json.dumps(body, indent=1) + "\n")
        return path


def _ends_a_line(path):
    """Whether the file at `path` is missing, empty or ends with a newline."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return True
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
    except FileNotFoundError:
        return True


def _records(path):
    """The records of a log for counting its runs (cut or unreadable lines pass unseen)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def read_log(path):
    """The runs of a `_log.jsonl` file: a list of (header dict, [records]).

    Records before any header (a log written before headers existed) form one run with an empty
    header. A record cut short by a killed run or a full disk (the last line without its
    newline, or the line just before a resumed run's header) is skipped with a warning; any other
    line that is not JSON is a DataError (a ValueError) naming the file and line.
    """
    with open(path, "rb") as f:
        raw = f.read()
    lines = raw.split(b"\n")
    unterminated_last = not raw.endswith(b"\n")
    runs, bad = [], None                     # bad: (line number, message) awaiting its verdict

    def verdict(cut_ok):
        if bad is None:
            return
        n, msg = bad
        if not cut_ok:
            raise DataError(f"{path}:{n}: {msg}")
        log.warning("%s:%d: skipped a record cut short (a killed run or a full disk)", path, n)

    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            verdict(False)
            raise DataError(f"{path}:{n}: not UTF-8 (is it a <snapshot_prefix>_log.jsonl "
                            "file?)") from None
        except json.JSONDecodeError as exc:
            verdict(False)
            bad = (n, f"not a JSON line ({exc.msg})")
            continue
        if not isinstance(record, dict):
            verdict(False)
            raise DataError(f"{path}:{n}: a record must be a JSON object, not "
                            f"{type(record).__name__}")
        is_resume = record.get("kind") == "run" and record.get("resumed_from") is not None
        verdict(is_resume)
        bad = None
        if record.get("kind") == "run":
            runs.append((record, []))
        else:
            if not runs:
                runs.append(({}, []))
            runs[-1][1].append(record)
    if bad is not None:
        verdict(unterminated_last and bad[0] == len(lines))
    return runs
