"""Rank groups: an MPI job split into groups of G ranks, each group training one run at a time
data parallel (what `python -m minicaffe.sweep` does under mpirun).

    groups = RankGroups(ranks_per_group=2)        # 8 ranks -> 4 groups of 2
    if groups.is_group_root:
        for spec in my share of the runs:
            fn(spec, make_solver=groups.make_solver)   # trains with the whole group
        groups.release()                          # the group's other ranks leave serve()
    else:
        groups.serve()                            # train whatever the group root asks for
    everything = groups.gather(my_results)        # on world rank 0, None elsewhere

Group g is world ranks [g*G, (g+1)*G); its rank 0 (the group root) runs the job's own code
(compaction, tests, writing tables) and, for every training, `make_solver(param)` sends the
SolverParameter to the group's other ranks, which build the same data-parallel solver
(parallel/session.py over the group's communicator) and run `solve()` with it; the root's
caller then calls `solve()` too. With G = 1 a group is one rank and `make_solver` is the
plain single-process `get_solver`.

Failures: a training that diverges stops on every rank of the group alike (the decision is on
the averaged loss) and the group goes on with its next run; any other exception escaping on a
rank ends the whole job (MPI_Abort, parallel/session.py), naming the rank.
"""
import logging

from minicaffe.errors import DivergenceError, ParallelError
from minicaffe.parallel.comm import import_mpi
from minicaffe.parallel.session import Session

log = logging.getLogger("minicaffe.parallel")


class RankGroups:
    """This process's group in the world (see the module doc).

    world_rank, world_size, ranks_per_group, groups (how many), group (this one's index),
    is_group_root, session (the Session over the group's communicator, None when G = 1).
    Raises ParallelError when the world does not split into groups of `ranks_per_group`.
    """

    def __init__(self, ranks_per_group=1, timeout="default", threads=1):
        mpi = import_mpi()
        world = mpi.COMM_WORLD
        self.world = world
        self.world_rank, self.world_size = world.Get_rank(), world.Get_size()
        g = int(ranks_per_group)
        if g < 1 or self.world_size % g:
            raise ParallelError(f"{self.world_size} MPI ranks do not split into groups of "
                                f"{g} (--ranks-per-run must divide the number of ranks)")
        self.ranks_per_group = g
        self.groups = self.world_size // g
        self.group = self.world_rank // g
        self._comm = world.Split(color=self.group, key=self.world_rank)
        # Each rank computes with `threads` threads; the session holds the exception hooks
        # (an exception escaping on any rank ends the job) and, for G > 1, the replicas.
        self.session = Session(timeout=timeout, threads=threads, comm=self._comm)
        self.is_group_root = self.session.rank == 0

    def runs(self, count):
        """Indices of the runs (out of `count`) this group trains: g, g + groups, ..."""
        return list(range(self.group, count, self.groups))

    def make_solver(self, param):
        """On the group root: the solver of `param` (a SolverParameter with its net), data
        parallel over the group (the other ranks build theirs now, in `serve`)."""
        if self.ranks_per_group == 1:
            from minicaffe.solver import get_solver  # noqa: PLC0415

            return get_solver(param)
        self.session.comm.bcast_object(("train", param), "a run's start", timeout=None)
        solver = self.session.solver(param)
        solve = solver.solve

        def solve_in_group(*args, **kwargs):
            # The group's other ranks wait in this training's collectives: anything but a
            # divergence (which they see too) ends the job rather than leave them waiting.
            try:
                return solve(*args, **kwargs)
            except DivergenceError:
                raise
            except BaseException as exc:  # noqa: BLE001
                self.session.fail(exc)

        solver.solve = solve_in_group
        return solver

    def serve(self):
        """On a group's other ranks: build and train every solver the group root asks for,
        until it calls `release()`."""
        while True:
            message = self.session.comm.bcast_object(None, "the group root's next run",
                                                     timeout=None)
            if message[0] == "done":
                return
            try:
                solver = self.session.solver(message[1])
            except ParallelError:
                continue             # raised on every rank of the group: the root reports it
            try:
                solver.solve()
            except DivergenceError:
                pass                 # the root saw the same, and reports it with its run
            except BaseException as exc:  # noqa: BLE001  (the root waits in a collective)
                self.session.fail(exc)
            finally:
                _close(solver)

    def release(self):
        """On the group root: let the group's other ranks leave `serve()`."""
        if self.ranks_per_group > 1:
            self.session.comm.bcast_object(("done", None), "the end of the runs", timeout=None)

    def gather(self, value):
        """[value of group 0's root, group 1's root, ...] on world rank 0 (None elsewhere)."""
        values = self.world.gather(value if self.is_group_root else None, root=0)
        if self.world_rank != 0:
            return None
        return [values[g * self.ranks_per_group] for g in range(self.groups)]

    def close(self):
        self.session.close()
        self._comm.Free()


def _close(solver):
    for layer in solver.net.layers:
        if hasattr(layer, "close"):
            layer.close()
