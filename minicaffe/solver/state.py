"""Snapshot files: weights via minicaffe.weights, solver state as an .npz (never pickle).

The `.solverstate` holds `iter`, `current_step`, `learned_net` (the weights file name, found
next to the state file first), every history array (`history_<blob>_<k>`), the connectivity
masks and NumPy's global RNG state, so a restored run continues bit-identically. Both files are
written to a temporary name in the target folder and renamed into place.
"""
import os
import tempfile

import numpy as np

from minicaffe import backend
from minicaffe.errors import SolverError


def _atomic(path, write):
    """Run `write(tmp_path)` and rename the result to `path` (same folder, so rename is atomic)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_weights(net, path):
    """Write the net's weights (.caffemodel or .npz by extension) atomically."""
    _atomic(path, net.save)


def save_state(solver, path, model_path):
    """Write `solver`'s state to `path` atomically."""
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
    name, keys, pos, has_gauss, cached = np.random.get_state()
    arrays.update(rng_keys=keys, rng_pos=np.array(pos), rng_has_gauss=np.array(has_gauss),
                  rng_cached=np.array(cached))

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    _atomic(path, write)


def load_state(solver, path):
    """Restore `solver` from a `.solverstate` written by `save_state`.

    Raises SolverError when the file is missing or does not match the net.
    """
    if not os.path.exists(path):
        raise SolverError(f"solver state '{path}' does not exist")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SolverError(f"solver state '{path}' is not a minicaffe .solverstate: {exc}") from None
    with z:
        n = int(z["num_params"])
        hc = int(z["history_count"])
        if n != len(solver.history) or hc != solver.history_count:
            raise SolverError(
                f"solver state '{path}' has {n} params x {hc} history blobs; this "
                f"{type(solver).__name__} on net has {len(solver.history)} x {solver.history_count}")
        model = str(z["learned_net"])
        beside = os.path.join(os.path.dirname(path), model)
        model = beside if os.path.exists(beside) else model
        if not os.path.exists(model):
            raise SolverError(f"solver state '{path}': weights file '{model}' not found")
        solver.net.copy_from(model)
        for i, hist in enumerate(solver.history):
            for k, h in enumerate(hist):
                saved = z[f"history_{i}_{k}"]
                if saved.shape != h.shape:
                    raise SolverError(f"solver state '{path}': history of {solver._blob_name(i)} "
                                      f"has shape {saved.shape}")
                h[...] = backend.to_current(saved)
        solver.iter = int(z["iter"])
        solver.current_step = int(z["current_step"])
        solver._losses.clear()
        solver._losses.extend(float(v) for v in z["smoothed_losses"])
        if solver._losses:
            solver.smoothed_loss = sum(solver._losses) / len(solver._losses)
        solver._masks = None
        if bool(z["masks_built"]):
            solver._masks = {int(i): backend.to_current(z[f"mask_{int(i)}"].astype(bool))
                             for i in z["mask_ids"]}
        np.random.set_state(("MT19937", z["rng_keys"], int(z["rng_pos"]),
                             int(z["rng_has_gauss"]), float(z["rng_cached"])))
