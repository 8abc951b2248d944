"""Regularizer base class and registry.

A regularizer is a penalty R(W) on one weight blob. The solver uses it in two ways:
  - `add_grad(w, diff, scale)`: diff += scale * dR/dW (a subgradient where R has a kink),
  - `prox(w, step)`: W <- argmin_U 1/2 ||U - W||^2 + step * R(U), in place.
`scale` and `step` carry the strength (lambda, and lr*lambda for the proximal step), so
`penalty` returns R(W) without it.
"""
from dataclasses import dataclass

from minicaffe.registry import Registry

REGULARIZERS = Registry("regularizer")


def register_regularizer(name):
    """Class decorator: make a Regularizer subclass buildable by name."""
    return REGULARIZERS.register(name)


class Regularizer:
    """Base: subclasses define `Params`, `penalty`, `add_grad` and `prox`."""

    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, **params):
        self.params = self.Params(**params)

    def penalty(self, w):
        """R(w) as a Python float."""
        raise NotImplementedError

    def add_grad(self, w, diff, scale):
        """diff += scale * dR/dw (in place; `diff` has w's shape)."""
        raise NotImplementedError

    def prox(self, w, step):
        """Proximal operator of step * R, applied to `w` in place."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.params})"
