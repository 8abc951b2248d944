"""Solvers (pycaffe's caffe.SGDSolver, ..., caffe.get_solver) and SSL regularization."""
from minicaffe.solver.base import SOLVERS, Solver, read_param, register_solver, solver_type
from minicaffe.solver.replicas import Replicas
from minicaffe.solver.sgd import SGDSolver
from minicaffe.solver.nesterov import NesterovSolver
from minicaffe.solver.adagrad import AdaGradSolver
from minicaffe.solver.rmsprop import RMSPropSolver
from minicaffe.solver.adadelta import AdaDeltaSolver
from minicaffe.solver.adam import AdamSolver
from minicaffe.errors import SolverError


def get_solver(param_or_path, replicas=None):
    """The solver named by the file's `type` (or legacy `solver_type`), built from a path or a
    SolverParameter (`replicas`: see Solver). Raises SolverError for an unknown type."""
    param, path = read_param(param_or_path)
    name = solver_type(param)
    if name not in SOLVERS:
        raise SolverError(f"{path or 'solver'}: {SOLVERS.unknown_message(name)}")
    return SOLVERS.get(name)(path if path is not None else param, replicas=replicas)


__all__ = ["Solver", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
           "AdaDeltaSolver", "AdamSolver", "get_solver", "register_solver", "SOLVERS", "Replicas"]
