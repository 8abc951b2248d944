"""Phases, numbered as pycaffe numbers them (caffe.TRAIN == 0, caffe.TEST == 1)."""
TRAIN = 0
TEST = 1
_NAMES = {TRAIN: "TRAIN", TEST: "TEST"}


def phase_name(phase):
    """'TRAIN' or 'TEST' from 0/1 or the names; ValueError otherwise."""
    if isinstance(phase, str) and phase.upper() in ("TRAIN", "TEST"):
        return phase.upper()
    if phase in _NAMES:
        return _NAMES[phase]
    raise ValueError(f"phase must be TRAIN/TEST (or 0/1), got {phase!r}")


def phase_id(phase):
    """0 or 1 from 0/1 or the names."""
    return TRAIN if phase_name(phase) == "TRAIN" else TEST
