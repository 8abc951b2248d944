"""Replicas: how one solver's iterations are shared with other processes training the same net
(data parallelism), seen from the solver.

The solver calls these hooks at fixed points of `step()`; every replica reaches each point in
the same iteration, so an implementation may run a collective operation in any of them. This
base class is the single process, where each hook does nothing (and the solver behaves as it
always has); `minicaffe.parallel.MPIReplicas` implements them over MPI (docs/SCALING.md).

Per iteration, in the solver's order:
  [test iteration] root: test_all(); every replica: after_test()
  forward/backward (iter_size passes) -> loss = reduce(solver, loss) -> divergence check ->
  display (outputs through mean(), only the root logs) -> on_gradients_ready callbacks ->
  update -> updated(solver) -> snapshot (only the root writes) -> agree(solver) on a request.
"""
import numpy as np


class Replicas:
    """One process: rank 0 of 1. Subclasses override the hooks (see the module doc)."""

    rank = 0
    size = 1

    @property
    def is_root(self):
        """Whether this replica tests, logs and writes snapshots and run logs."""
        return self.rank == 0

    def attach(self, solver):
        """Called once at the end of the solver's construction."""

    def restore(self, solver, load):
        """Restore a .solverstate: `load()` reads it into `solver` (raising SolverError).
        Every replica calls this; over MPI only the root reads the file and the others
        receive its state."""
        load()

    def begin(self, solver):
        """Called when `step()` starts: make every replica's state the root's (weights,
        history, iteration, RNG) before the first iteration."""

    def reduce(self, solver, loss):
        """After the iteration's forward/backward passes: leave in every learnable diff the
        average over the replicas, and return the loss averaged likewise."""
        return loss

    def mean(self, arrays):
        """[float64 arrays] -> the same arrays averaged over the replicas."""
        return [np.asarray(a, dtype=np.float64) for a in arrays]

    def after_test(self, solver):
        """After the root's test pass (called on every replica at a test iteration)."""

    def updated(self, solver):
        """After the update of an iteration is applied (debug checks)."""

    def agree(self, solver):
        """The pending request ("stop" / "snapshot" / None) every replica acts on now; clears
        what it returns from `solver._requested`."""
        action, solver._requested = solver._requested, None
        return action

    def finish(self, solver):
        """When `solve()` ends (statistics, a final report)."""
