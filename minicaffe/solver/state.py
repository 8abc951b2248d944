"""Snapshot files: weights via minicaffe.weights, solver state as an .npz (never pickle).

The `.solverstate` holds `iter`, `current_step`, `learned_net` (the weights file name, found
next to the state file first), every history array (`history_<blob>_<k>`), the connectivity
masks, the budget controller's state (`budget_*`, see budget.py) and NumPy's global RNG state,
so a restored run continues bit-identically.

Writing (`write_snapshot`) is all or nothing: both files go to hidden temporary names in the
target folder (`.<name>.<pid>.minicaffe-tmp<ext>`), are flushed to disk, then renamed into
place, weights first. A write that fails (full disk, file-size limit) removes its temporary
files and raises SnapshotError; a process killed mid-write leaves only temporary files, which
`remove_stale_temp_files` deletes at the next start (those of dead processes). Files are
created with mode 0666 minus the umask, like any other file the user writes.
"""
import logging
import os

import numpy as np

from minicaffe import backend
from minicaffe.errors import DataError, LayerSetupError, SnapshotError, SolverError

log = logging.getLogger("minicaffe.solver")

TEMP_SUFFIX = ".minicaffe-tmp"


def temp_path(path):
    """The hidden temporary name `path` is written under before it is renamed into place."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.{os.getpid()}{TEMP_SUFFIX}{ext}")


def _writer_pid(name, stem_prefix):
    """The pid in a temporary file name of ours starting with `.<stem_prefix>`, else None."""
    if not name.startswith("." + stem_prefix) or TEMP_SUFFIX not in name:
        return None
    head = name[:name.rindex(TEMP_SUFFIX)]
    pid = head.rsplit(".", 1)[-1]
    return int(pid) if pid.isdigit() else None


def _alive(pid):
    """Whether process `pid` exists (a temporary file of a live writer is left alone)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:                      # someone else's process
        return True
    return True


def remove_stale_temp_files(prefix):
    """Delete the temporary snapshot files of `prefix` (`.<prefix name>_iter_*`) left by a
    process that no longer runs (killed while writing); returns their paths."""
    folder, base = os.path.split(os.path.abspath(prefix))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        pid = _writer_pid(name, f"{base}_iter_")
        if pid is None or (pid != os.getpid() and _alive(pid)):
            continue
        path = os.path.join(folder, name)
        try:
            os.remove(path)
        except OSError:
            continue
        removed.append(path)
    if removed:
        log.info("Removed %d unfinished snapshot file(s) of an interrupted run: %s",
                 len(removed), ", ".join(os.path.basename(p) for p in removed))
    return removed


def _sync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(solver, model_path, state_path, previous=None):
    """Write the net's weights to `model_path` and the solver state to `state_path`, all or
    nothing (see the module doc). Raises SnapshotError naming the file and the previous
    snapshot (`previous`, intact) when a write fails."""
    folder = os.path.dirname(os.path.abspath(state_path))
    os.makedirs(folder, exist_ok=True)
    pending = [(temp_path(model_path), model_path), (temp_path(state_path), state_path)]
    target = model_path
    try:
        for tmp, _ in pending:
            if os.path.exists(tmp):
                os.remove(tmp)
        solver.net.save(pending[0][0])
        target = state_path
        _write_state(solver, pending[1][0], model_path)
        for tmp, _ in pending:
            _sync(tmp)
        for tmp, final in pending:
            target = final
            os.replace(tmp, final)
        try:
            _sync(folder)
        except OSError:
            pass                       # some file systems cannot sync a directory
    except OSError as exc:
        for tmp, _ in pending:
            if os.path.exists(tmp):
                os.remove(tmp)
        kept = f"the previous snapshot {previous} is intact" if previous else \
            "no earlier snapshot of this run"
        raise SnapshotError(f"snapshot of iteration {solver.iter} to {target} failed: "
                            f"[Errno {exc.errno}] {exc.strerror or exc}; nothing of it was kept, "
                            f"{kept}", exc.errno, target) from None
    except BaseException:
        for tmp, _ in pending:
            if os.path.exists(tmp):
                os.remove(tmp)
        raise


def _write_state(solver, path, model_path):
    """Write `solver`'s state to `path` (the weights file it refers to: `model_path`)."""
    arrays = {
        "iter": np.array(solver.iter, dtype=np.int64),
        "current_step": np.array(solver.current_step, dtype=np.int64),
        "learned_net": np.array(os.path.basename(model_path)),
        "history_count": np.array(solver.history_count, dtype=np.int64),
        "num_params": np.array(len(solver.history), dtype=np.int64),
        "smoothed_losses": np.array(list(solver._losses), dtype=np.float64),
    }
    for i, hist in enumerate(solver.history):
        for k, h in enumerate(hist):
            arrays[f"history_{i}_{k}"] = backend.asnumpy(h)
    masks = solver._masks or {}
    arrays["masks_built"] = np.array(solver._masks is not None)
    arrays["mask_ids"] = np.array(sorted(masks), dtype=np.int64)
    for i, m in masks.items():
        arrays[f"mask_{i}"] = backend.asnumpy(m)
    if getattr(solver, "budget", None) is not None:
        arrays.update(solver.budget.state_arrays())
    name, keys, pos, has_gauss, cached = np.random.get_state()
    arrays.update(rng_keys=keys, rng_pos=np.array(pos), rng_has_gauss=np.array(has_gauss),
                  rng_cached=np.array(cached))

    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_state(solver, path):
    """Restore `solver` from a `.solverstate` written by `save_state`.

    Everything is read and checked before anything changes: a missing, truncated, foreign or
    malformed file (an entry missing or of the wrong type or shape), a state that does not
    match the net, or an unreadable weights file raises SolverError naming the file and the
    entry, and leaves the solver as it was.
    """
    path = os.fspath(path)
    where = f"solver state '{path}'"
    if not os.path.exists(path):
        raise SolverError(f"{where} does not exist")
    z = _read_arrays(path, where)
    n = _int(z, "num_params", where)
    hc = _int(z, "history_count", where)
    if n != len(solver.history) or hc != solver.history_count:
        raise SolverError(
            f"{where} has {n} params x {hc} history blobs; this "
            f"{type(solver).__name__} on net has {len(solver.history)} x {solver.history_count}")
    model = _string(z, "learned_net", where)
    beside = os.path.join(os.path.dirname(path), model)
    model = beside if os.path.exists(beside) else model
    if not model or not os.path.exists(model):
        raise SolverError(f"{where}: weights file '{model}' not found")
    history = []
    for i, hist in enumerate(solver.history):
        for k, h in enumerate(hist):
            saved = _array(z, f"history_{i}_{k}", where, "f")
            if saved.shape != h.shape:
                raise SolverError(f"{where}: history of {solver._blob_name(i)} has shape "
                                  f"{saved.shape}")
            history.append((h, saved))
    it = _int(z, "iter", where)
    current_step = _int(z, "current_step", where)
    losses = _array(z, "smoothed_losses", where, "f", ndim=1)
    masks = None
    if _scalar(z, "masks_built", where, "b"):
        masks = {}
        for i in (int(v) for v in _array(z, "mask_ids", where, "iu", ndim=1)):
            if not 0 <= i < len(solver._params):
                raise SolverError(f"{where}: mask for param {i}; the net has "
                                  f"{len(solver._params)}")
            mask = _array(z, f"mask_{i}", where, "bfiu")
            if mask.shape != tuple(solver._params[i].shape):
                raise SolverError(f"{where}: mask of {solver._blob_name(i)} has shape {mask.shape}")
            masks[i] = mask.astype(bool)
    keys = _array(z, "rng_keys", where, "iu", ndim=1)
    if keys.shape != (624,):
        raise SolverError(f"{where}: 'rng_keys' has shape {keys.shape}; expected (624,)")
    rng = ("MT19937", keys.astype(np.uint32), _int(z, "rng_pos", where),
           _int(z, "rng_has_gauss", where), float(_scalar(z, "rng_cached", where, "fiu")))
    if rng[2] > 624:
        raise SolverError(f"{where}: 'rng_pos' = {rng[2]}; expected 0 to 624")
    budget = getattr(solver, "budget", None)
    if budget is not None:
        saved_budget = budget.state_arrays()
        budget.load_state_arrays(z, where)     # checks before anything else changes
    try:
        solver.net.copy_from(model)
    except (DataError, LayerSetupError) as exc:
        if budget is not None:
            budget.load_state_arrays(saved_budget, where)
        raise SolverError(f"{where}: weights file '{model}': {exc}") from None
    for h, saved in history:
        h[...] = backend.to_current(saved)
    solver.iter = it
    solver.current_step = current_step
    solver._losses.clear()
    solver._losses.extend(float(v) for v in losses)
    if solver._losses:
        solver.smoothed_loss = sum(solver._losses) / len(solver._losses)
    solver._masks = None if masks is None else \
        {i: backend.to_current(m) for i, m in masks.items()}
    np.random.set_state(rng)


def _read_arrays(path, where):
    """{name: array} of every member of the .npz at `path` (each read, so CRCs are checked)."""
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise SolverError(f"{where}: not a minicaffe .solverstate (a single .npy array, "
                              "not an .npz archive)")
        with z:
            return {k: z[k] for k in z.keys()}
    except SolverError:
        raise
    except Exception as exc:  # noqa: BLE001  (zipfile/NumPy raise many kinds on hostile bytes)
        raise SolverError(f"{where}: not a minicaffe .solverstate ({type(exc).__name__}: "
                          f"{exc})") from None


def _array(z, key, where, kinds, ndim=None):
    if key not in z:
        raise SolverError(f"{where}: missing '{key}'; not a minicaffe .solverstate or a "
                          "damaged one")
    a = z[key]
    if a.dtype.kind not in kinds or (ndim is not None and a.ndim != ndim):
        want = {"f": "numbers", "iu": "integers", "b": "a boolean", "U": "a string"}.get(
            kinds, "numbers")
        raise SolverError(f"{where}: '{key}' is a {a.dtype} array of shape {a.shape}; expected "
                          f"{want}" + (f" in {ndim} axis" if ndim else ""))
    return a


def _scalar(z, key, where, kinds):
    a = z.get(key) if key in z else None
    if a is None or a.shape != () or a.dtype.kind not in kinds:
        if a is None:
            _array(z, key, where, kinds)
        want = {"iu": "an integer", "b": "a boolean", "U": "a string",
                "fiu": "a number"}.get(kinds, "a value")
        raise SolverError(f"{where}: '{key}' is a {a.dtype} array of shape {a.shape}; expected "
                          f"{want}")
    return a[()]


def _int(z, key, where, minimum=0):
    value = int(_scalar(z, key, where, "iu"))
    if value < minimum:
        raise SolverError(f"{where}: '{key}' = {value}; expected >= {minimum}")
    return value


def _string(z, key, where):
    return str(_scalar(z, key, where, "U"))
