"""Regularization terms added by the solver: weight decay (L2, L1) and SSL's group Lasso.

`REGULARIZERS.get(name)(**params)` builds one; every module here registers itself.
"""
from minicaffe.registry import import_submodules
from minicaffe.solver.regularizers.base import REGULARIZERS, Regularizer, register_regularizer

import_submodules(__name__, __path__)

__all__ = ["REGULARIZERS", "Regularizer", "register_regularizer"]
