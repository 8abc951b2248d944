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
"""
import datetime
import json
import os
import tempfile


def _now():
    return datetime.datetime.now().isoformat(timespec="seconds")


def _write_atomic(path, text):
    """Write `text` to a temporary file next to `path` and rename it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".summary.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
        with open(self.path, mode) as f:
            for r in lines:
                f.write(json.dumps(r) + "\n")

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


def _records(path):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                yield json.loads(line)


def read_log(path):
    """The runs of a `_log.jsonl` file: a list of (header dict, [records]).

    Records before any header (a log written before headers existed) form one run with an empty
    header. Raises ValueError naming the file and line for a line that is not JSON.
    """
    runs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not a JSON line ({exc.msg})") from None
            if record.get("kind") == "run":
                runs.append((record, []))
            else:
                if not runs:
                    runs.append(({}, []))
                runs[-1][1].append(record)
    return runs
