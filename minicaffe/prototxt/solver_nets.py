"""Which nets a solver trains and tests, read and given their NetState (Caffe's
Solver::InitTrainNet / InitTestNets).

Relative net paths are tried relative to the working directory first (as Caffe does), then
relative to the solver file's folder: `net: "prototxt/lenet/lenet_train_test.prototxt"` (Caffe's
style, run from the project root) and `net: "lenet_train_test.prototxt"` (next to the solver)
both work.
"""
import os
from dataclasses import dataclass, field

from minicaffe.errors import ParseError
from minicaffe.prototxt.message import message_class

_TRAIN_FIELDS = ("train_net_param", "train_net", "net_param", "net")


@dataclass
class SolverNets:
    """The train net and the test nets of a solver, each a NetParameter whose `state` holds
    the phase/level/stages to build it with (`filter_net(net, net.state.phase,
    net.state.level, net.state.stage)`); `*_source` says where each came from (a resolved file
    path or the inline field's name)."""
    train: object
    train_source: str
    tests: list = field(default_factory=list)
    test_sources: list = field(default_factory=list)


def _error(solver, name, text):
    pos = solver.position_of(name) or (None, None, None)
    line = solver._source.line(pos[1]) if solver._source is not None and pos[1] else None
    return ParseError(text, pos[0], pos[1], pos[2], line)


def resolve_net_path(solver, name, value):
    """Path of net file `value` given in solver field `name`: as written if it exists
    (absolute, or relative to the working directory), else relative to the solver file's
    folder; ParseError naming every path tried when none exists."""
    tried = [os.path.abspath(value)]
    if os.path.exists(value):
        return value
    solver_path = (solver.position or (None,))[0]
    if not os.path.isabs(value) and solver_path:
        beside = os.path.join(os.path.dirname(os.path.abspath(solver_path)), value)
        if os.path.exists(beside):
            return beside
        if os.path.abspath(beside) not in tried:
            tried.append(os.path.abspath(beside))
    raise _error(solver, name, f"{name} file '{value}' not found (tried "
                 f"{' and '.join(tried)})")


def _load(solver, name, index=None):
    from minicaffe.prototxt.reader import read_net

    value = getattr(solver, name)
    if index is not None:
        value = value[index]
    if isinstance(value, str):
        path = resolve_net_path(solver, name, value)
        return read_net(path), path
    return value.copy(), name if index is None else f"{name}[{index}]"


def _state(phase, net, extra):
    """Caffe's merge: phase, then the net's own state, then the solver's train/test_state."""
    state = message_class("NetState")(phase=phase)
    for src in (net.state, extra):
        if src is None:
            continue
        for name in ("phase", "level"):
            if src.has(name):
                setattr(state, name, getattr(src, name))
        state.stage.extend(src.stage)
    return state


def solver_nets(solver):
    """SolverNets for SolverParameter `solver` (net files are read); ParseError when the train
    net is missing or given twice, or test_iter/test_state do not match the test nets."""
    given = [n for n in _TRAIN_FIELDS if solver.has(n)]
    if not given:
        raise _error(solver, None, "solver names no train net; set one of "
                     + ", ".join(_TRAIN_FIELDS))
    if len(given) > 1:
        raise _error(solver, given[1], "solver names the train net more than once ("
                     + ", ".join(given) + "); keep one")
    train, source = _load(solver, given[0])
    train.state = _state("TRAIN", train, solver.train_state if solver.has("train_state")
                         else None)
    nets = SolverNets(train, source)

    generic = [n for n in ("net_param", "net") if solver.has(n)]
    specific = len(solver.test_net_param) + len(solver.test_net)
    n_iter = len(solver.test_iter)
    if (generic and n_iter < specific) or (not generic and n_iter != specific):
        raise _error(solver, "test_iter", f"test_iter is given {n_iter} time(s) for "
                     f"{specific} test net(s){' plus the generic net' if generic else ''}; "
                     "give one test_iter per test net")
    n_tests = max(n_iter, specific)
    if solver.test_state and len(solver.test_state) != n_tests:
        raise _error(solver, "test_state", f"{len(solver.test_state)} test_state(s) for "
                     f"{n_tests} test net(s); give none or one per test net")
    loaded = [_load(solver, "test_net_param", i) for i in range(len(solver.test_net_param))]
    loaded += [_load(solver, "test_net", i) for i in range(len(solver.test_net))]
    loaded += [_load(solver, generic[0]) for _ in range(n_tests - specific)]
    for i, (net, src) in enumerate(loaded):
        extra = solver.test_state[i] if solver.test_state else None
        net.state = _state("TEST", net, extra)
        nets.tests.append(net)
        nets.test_sources.append(src)
    return nets
