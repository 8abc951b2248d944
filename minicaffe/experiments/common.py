"""What every experiment shares: the output folder, the machine it ran on, the data it read,
progress lines with an ETA, and Markdown tables.

An experiment writes into one folder (`results/<name>/` by default): `<name>.md` (the tables,
with the data, schedule and machine stated above them), `<name>.json` (the same as data), PNG
figures, and a `runs/` subfolder with every training stage's snapshots, `_log.jsonl` and
`_summary.json` and the full Caffe-style log (`train.log`).
"""
import datetime
import json
import logging
import os
import platform
import sys
import time

from minicaffe import timing
from minicaffe.ops import build_info, get_num_threads


class Output:
    """The result folder of one experiment."""

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        os.makedirs(self.folder, exist_ok=True)

    def path(self, *parts):
        """A path inside the folder (sub-folders created)."""
        p = os.path.join(self.folder, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def write_text(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def write_json(self, name, obj):
        return self.write_text(name, json.dumps(obj, indent=1, default=_jsonable) + "\n")


def _jsonable(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "to_dict"):
        return x.to_dict()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def load_average():
    """The 1-minute load average (None where the OS does not report it)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine():
    """The machine and software an experiment ran on, as a dict for the JSON and the table."""
    info = build_info()
    return {"cpu": timing.cpu_model(), "logical_cpus": os.cpu_count(),
            "threads": get_num_threads(), "load_average_1min": load_average(),
            "blas": info.get("blas_version") or info.get("blas_vendor"), "isa": info.get("isa"),
            "python": platform.python_version(), "date": datetime.date.today().isoformat()}


def machine_line(m):
    """One sentence naming the machine, for the top of a Markdown table."""
    load = "" if m.get("load_average_1min") is None else f", load average {m['load_average_1min']}"
    return (f"{m['cpu']}, {m['logical_cpus']} logical CPUs, {m['threads']} compute thread(s)"
            f"{load}; {m['blas']}; Python {m['python']}; {m['date']}")


def markdown_table(header, rows, align=None):
    """A Markdown table: `header` a list of str, `rows` lists of cells (str() of each)."""
    align = align or ["---"] * len(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        out.append("| " + " | ".join("" if c is None else str(c) for c in r) + " |")
    return "\n".join(out)


def wall_time_line(result):
    """The table header's wall-time sentence of an experiment result (its "seconds" and
    "quick"): --quick runs are marked as not comparable."""
    return (f"Wall time {fmt_duration(result['seconds'])}"
            + (" (--quick: shortened schedules, numbers not comparable)." if result["quick"]
               else "."))


def fmt_duration(seconds):
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Progress of a plan of stages: one line per stage when it starts and ends, and a status
    line (iteration, speed, stage ETA, total ETA) at most every `every` seconds in between.

    `plan`: [(stage name, cost)], the cost in iterations of the baseline net (a stage of a
    smaller net may declare a smaller cost); the total ETA assumes the speed measured so far.
    """

    def __init__(self, plan, stream=None, every=15.0, clock=time.monotonic):
        self.plan = list(plan)
        self.stream = stream if stream is not None else sys.stderr
        self.every, self.clock = every, clock
        self.done_cost = 0.0
        self.t0 = clock()
        self.spent = 0.0            # seconds spent in finished stages
        self.current = None

    def _print(self, text):
        print(text, file=self.stream, flush=True)

    def _index(self, name):
        names = [n for n, _ in self.plan]
        return names.index(name) + 1 if name in names else 0

    def _remaining_after(self, name):
        names = [n for n, _ in self.plan]
        k = names.index(name) if name in names else len(names)
        return sum(c for _, c in self.plan[k + 1:])

    def start(self, name, iterations, what=""):
        """A stage begins; returns the callback `(iter, loss)` to give `Solver.progress`."""
        cost = dict(self.plan).get(name, iterations)
        self.current = {"name": name, "iters": max(int(iterations), 1), "cost": cost,
                        "t": self.clock(), "last": self.clock(), "first_iter": None}
        k = self._index(name)
        self._print(f"[{k}/{len(self.plan)}] {name}: {what or str(iterations) + ' iterations'}")

        def update(it, loss):
            cur = self.current
            now = self.clock()
            if cur["first_iter"] is None:
                cur["first_iter"] = it - 1
                cur["t_first"] = cur["t"]
            if now - cur["last"] < self.every and it < cur["iters"]:
                return
            cur["last"] = now
            done = it - cur["first_iter"]
            rate = done / max(now - cur["t_first"], 1e-9)
            left = (cur["iters"] - it) / max(rate, 1e-9)
            # the other stages at this stage's speed per unit of cost
            per_cost = (now - cur["t_first"]) / max(done * cur["cost"] / cur["iters"], 1e-9)
            total = left + self._remaining_after(name) * per_cost
            self._print(f"      {name} {it}/{cur['iters']} it, {rate:.1f} it/s, loss {loss:.4g}, "
                        f"stage ETA {fmt_duration(left)}, total ETA {fmt_duration(total)}")
        return update

    def end(self, name, result=""):
        cur = self.current or {"t": self.clock()}
        seconds = self.clock() - cur["t"]
        self.spent += seconds
        self._print(f"      {name} done in {fmt_duration(seconds)}{': ' + result if result else ''}"
                    f" (elapsed {fmt_duration(self.clock() - self.t0)})")
        self.current = None

    def note(self, text):
        self._print(f"      {text}")


def log_to_file(path):
    """Send minicaffe's Caffe-style log lines to `path` instead of the terminal; returns a
    function that restores the previous handlers."""
    root = logging.getLogger("minicaffe")
    saved = (list(root.handlers), root.level, root.propagate)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(levelname).1s%(asctime)s %(message)s",
                                           datefmt="%m%d %H:%M:%S"))
    for h in saved[0]:
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False

    def restore():
        root.removeHandler(handler)
        handler.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
        root.propagate = saved[2]
    return restore
