#!/usr/bin/env python3
"""Mutation testing of the numerics that must not drift, with cosmic-ray, one target at a time.

Each target is one module (or a few) plus the tests that are meant to pin it down; a mutant is
run against those tests only (stopping at the first failure), so a target takes minutes, not
hours, on 2 cores. `scope` narrows a target to some functions of its module (the solver's
update path, not its logging). Not part of CI: see docs/TESTING.md for the command, the
measured scores and the surviving mutants judged equivalent.

    python scripts/mutation.py                    # every target, then the table
    python scripts/mutation.py groups weights     # some targets
    python scripts/mutation.py --report           # the table (and survivors) of the last runs
    python scripts/mutation.py --list             # the targets
    python scripts/mutation.py --wrap cpujob      # each mutant's test run under a lock command
                                                  # (slow where benchmarks hold the machine often:
                                                  # there, run the whole script under the lock)

cosmic-ray mutates the files IN PLACE and restores them after each mutant: run it in a clean
checkout (a clone, with the kernels built in place) and do not edit the files meanwhile.
Sessions are kept in mutation/<target>.sqlite (git-ignored) and resume where they stopped;
--fresh starts a target over (do that after changing its code or tests).
Needs `pip install cosmic-ray` (not in the test extra: CI does not run this).
"""
import argparse
import ast
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "mutation"


@dataclass(frozen=True)
class Target:
    modules: tuple            # paths relative to the repository root
    tests: tuple              # pytest arguments: the tests that should kill its mutants
    scope: tuple = ()         # "func" or "Class.method" names in modules[0]; empty: everything
    timeout: float = 120.0    # seconds per mutant (a mutant that loops forever is killed)
    note: str = field(default="", compare=False)


TARGETS = {
    "groups": Target(("minicaffe/groups.py",),
                     ("tests/test_groups.py", "tests/solver/test_regularizers.py")),
    "solver-update": Target(
        ("minicaffe/solver/base.py",),
        ("tests/solver/test_solver_combinations.py", "tests/solver/test_solver_base.py",
         "tests/solver/test_update_rules.py"),
        scope=("Solver._check_common", "Solver._build_regularization", "Solver.has_group_terms",
               "Solver.zero_threshold", "Solver.proximal", "Solver.refresh_masks",
               "Solver.learning_rate", "Solver.clip_gradients", "Solver.regularize",
               "Solver.apply_update", "Solver.forward_backward_all", "_spec"),
        note="the update path of Solver (not logging, snapshots, testing)"),
    "update-rules": Target(
        ("minicaffe/solver/sgd.py", "minicaffe/solver/nesterov.py", "minicaffe/solver/adagrad.py",
         "minicaffe/solver/rmsprop.py", "minicaffe/solver/adadelta.py", "minicaffe/solver/adam.py",
         "minicaffe/solver/lr_policy.py"),
        ("tests/solver/test_update_rules.py", "tests/solver/test_lr_policy.py",
         "tests/solver/test_solver_base.py")),
    "regularizers": Target(
        ("minicaffe/solver/regularizers/group_lasso.py", "minicaffe/solver/regularizers/l1.py",
         "minicaffe/solver/regularizers/l2.py"),
        ("tests/solver/test_regularizers.py", "tests/solver/test_solver_combinations.py",
         "tests/solver/test_solver_base.py")),
    "formats": Target(("minicaffe/ops/formats.py",),
                      ("tests/ops/test_formats.py", "tests/ops/test_matmul.py",
                       "tests/ops/test_conv.py")),
    "pooling-size": Target(("minicaffe/catalog/pooling.py",),
                           ("tests/catalog/test_pooling.py::test_pooled_shape_rules",
                            "tests/catalog/test_pooling.py::test_invalid_pooling",
                            "tests/catalog/test_pooling.py"),
                           scope=("pooled_shape", "Pooling.setup", "Pooling.reshape"),
                           timeout=300.0,
                           note="Caffe's output-size rule and the geometry checks"),
    "conv-size": Target(("minicaffe/ops/geometry.py",),
                        ("tests/ops/test_geometry.py", "tests/ops/test_im2col.py",
                         "tests/ops/test_conv.py", "tests/catalog/test_convolution.py")),
    "weights": Target(("minicaffe/weights.py",),
                      ("tests/test_weights_caffe_rules.py", "tests/test_weights.py")),
    "wire": Target(("minicaffe/wire.py",), ("tests/data/test_wire.py", "tests/test_weights.py")),
}


@dataclass(frozen=True)
class Equivalent:
    """A surviving mutant judged equivalent (no test can tell it from the original): the
    module, cosmic-ray's operator name, the original line and the mutated one (stripped; None:
    any mutant of that operator on that line) and why."""
    module: str
    operator: str
    line: str
    mutated: str
    why: str


def _eq(module, operator, line, mutated, why):
    return Equivalent(module, operator, line, mutated, why)


GROUPS, GROUP_LASSO = "minicaffe/groups.py", "minicaffe/solver/regularizers/group_lasso.py"
BASE = "minicaffe/solver/base.py"
POOL, GEOMETRY = "minicaffe/catalog/pooling.py", "minicaffe/ops/geometry.py"
WEIGHTS = "minicaffe/weights.py"
_MASK = "if {} or info.{} or w.{}:"
_DECAY = "decay.append((REGULARIZERS.get(rtype)(), local) if local else (None, {}))"
_ROW = 'wanted = [("row", p.breadth_decay * _spec(spec, "breadth_decay_mult", 0.0), {}, {}),'
_COLUMN = '("column", p.kernel_shape_decay * _spec(spec, "kernel_shape_decay_mult", 0.0),'
_AREA = "return math.prod(shape[2:]) if len(shape) {} else 1"
_GRAD = "diff += xp.where(live, scale * w / xp.where(live, n, {}), 0)"
_PROX = "factor = xp.where(live, xp.maximum(1 - step / xp.where(live, n, {}), 0), {})"

# Survivors examined and judged equivalent; the report counts them apart. Matched on module,
# operator and the original and mutated source lines, so an entry outlives session ids (and
# stops matching when the line changes: then look again).
EQUIVALENT = [
    _eq(GROUPS, "core/ReplaceComparisonOperator_Eq_GtE", 'if kind == "row":',
        'if kind >= "row":', "_group_shape only sees valid kinds (tile_dims raised otherwise); "
        "of them only 'row' >= 'row'"),
    _eq(GROUPS, "core/ReplaceComparisonOperator_Eq_GtE", 'if kind == "layer":',
        'if kind >= "layer":', "reached by filter2d, block and layer only; of them only "
        "'layer' >= 'layer'"),
    *[_eq(GROUPS, op, _AREA.format("> 2"), _AREA.format(cond),
          "math.prod of an empty tuple is 1, so any guard true only for len(shape) <= 2 agrees")
      for op, cond in (("core/ReplaceComparisonOperator_Gt_NotEq", "!= 2"),
                       ("core/ReplaceComparisonOperator_Gt_GtE", ">= 2"),
                       ("core/NumberReplacer", "> 1"))],
    _eq(GROUPS, "core/ReplaceComparisonOperator_Gt_NotEq",
        '+ (f" (conv group {g})" if g > 1 else "")', '+ (f" (conv group {g})" if g != 1 else "")',
        "g >= 1 always (lowered_shape refuses smaller), so g != 1 is g > 1"),
    *[_eq(GROUPS, "core/NumberReplacer", f"return per_tile[{i}]", f"return per_tile[{m}]",
          "index 0 and -1 are the same element of a length-1 axis")
      for i, m in ((":, :, 0", ":, :, -1"), (":, 0, :", ":, -1, :"))],
    _eq(GROUP_LASSO, "core/ReplaceComparisonOperator_Gt_NotEq", "live = n > 0", "live = n != 0",
        "group norms are >= 0, so n != 0 is n > 0 for finite weights (a NaN group diverges "
        "either way)"),
    _eq(GROUP_LASSO, "core/ReplaceFalseWithTrue", "w *= factor.astype(w.dtype, copy=False)",
        "w *= factor.astype(w.dtype, copy=True)", "copy=True only costs a copy"),
    _eq(GROUP_LASSO, "core/NumberReplacer", _GRAD.format(1), _GRAD.format(2),
        "the placeholder divisor of dead groups is masked out by the outer where"),
    _eq(GROUP_LASSO, "core/NumberReplacer", _PROX.format(1, 0), _PROX.format(2, 0),
        "the placeholder divisor of dead groups is masked out by the outer where"),
    *[_eq(GROUP_LASSO, "core/NumberReplacer", _PROX.format(1, 0), _PROX.format(1, f), "a dead "
          "group is all zeros: scaling it by 1 or -1 leaves it 0 (-0.0 == 0)") for f in (1, -1)],
    # -- the solver's update path (minicaffe/solver/base.py)
    *[_eq(BASE, op, _MASK.format('mode == "CONNECTED"', "index != 0", "ndim < 2"),
          _MASK.format(*parts), why) for op, parts, why in (
        ("core/ReplaceComparisonOperator_Eq_Lt", ('mode < "CONNECTED"', "index != 0", "ndim < 2"),
         "no mode sorts before CONNECTED: CONNECTED then falls through both elifs, no mask"),
        ("core/ReplaceComparisonOperator_Eq_LtE", ('mode <= "CONNECTED"', "index != 0",
                                                   "ndim < 2"),
         "of the three modes only CONNECTED is <= 'CONNECTED'"),
        ("core/ReplaceComparisonOperator_Eq_Is", ('mode is "CONNECTED"', "index != 0", "ndim < 2"),
         "a CONNECTED mode not skipped here matches neither elif: no mask either way"),
        ("core/ReplaceComparisonOperator_NotEq_Gt", ('mode == "CONNECTED"', "index > 0",
                                                     "ndim < 2"),
         "a param index is >= 0, so index > 0 is index != 0"))],
    _eq(BASE, "core/ReplaceComparisonOperator_Eq_LtE",
        'return self.param.group_lasso_update == "PROXIMAL"',
        'return self.param.group_lasso_update <= "PROXIMAL"',
        "the enum has PROXIMAL and SUBGRADIENT, and 'SUBGRADIENT' > 'PROXIMAL'"),
    _eq(BASE, "core/ReplaceComparisonOperator_Eq_LtE", 'if mode == "DISCONNECTED_ELTWISE":',
        'if mode <= "DISCONNECTED_ELTWISE":',
        "CONNECTED was skipped; of the other two only ELTWISE is <= 'DISCONNECTED_ELTWISE'"),
    *[_eq(BASE, op, 'elif mode == "DISCONNECTED_GRPWISE":', f'elif mode {cmp} "DISCONNECTED_GRPWISE":',
          "only DISCONNECTED_GRPWISE reaches this test") for op, cmp in (
        ("core/ReplaceComparisonOperator_Eq_LtE", "<="),
        ("core/ReplaceComparisonOperator_Eq_GtE", ">="))],
    _eq(BASE, "core/ReplaceComparisonOperator_Eq_LtE",
        "if self.param.display and self.iter % self.param.display == 0:",
        "if self.param.display and self.iter % self.param.display <= 0:",
        "iter % display is never negative"),
    *[_eq(BASE, op, "if scale != 1.0:", f"if scale {cmp}:",
          "the guard only skips multiplying the diff by 1.0") for op, cmp in (
        ("core/ReplaceComparisonOperator_NotEq_Lt", "< 1.0"),
        ("core/ReplaceComparisonOperator_NotEq_LtE", "<= 1.0"),
        ("core/NumberReplacer", "!= 2.0"), ("core/NumberReplacer", "!= 0.0"))],
    *[_eq(BASE, op, 'label = kind if kind != "block" else f"block {yd}x{xd}"',
          f'label = kind if kind {cmp} "block" else f"block {{yd}}x{{xd}}"', why) for op, cmp, why in (
        ("core/ReplaceComparisonOperator_NotEq_Gt", ">",
         "the kinds here are row, column and block, and 'row' and 'column' sort after 'block'"),
        ("core/ReplaceComparisonOperator_NotEq_IsNot", "is not",
         "the kinds here are literals of this function, so they are the interned 'block'"))],
    *[_eq(BASE, op, "if thr > 0:", f"if thr {cmp}:",
          "the threshold is >= 0; with 0 the mask |w| < 0 selects nothing") for op, cmp in (
        ("core/ReplaceComparisonOperator_Gt_NotEq", "!= 0"),
        ("core/ReplaceComparisonOperator_Gt_GtE", ">= 0"), ("core/NumberReplacer", "> -1"))],
    _eq(BASE, "core/ReplaceComparisonOperator_Gt_GtE", "if norm > clip:", "if norm >= clip:",
        "at norm == clip the scale factor clip / norm is 1"),
    *[_eq(BASE, "core/NumberReplacer", _DECAY.format("0.0"), _DECAY.format(v),
          "the local decay of a blob without a decay regularizer is never read") for v in
      ("1.0", "-1.0")],
    *[_eq(BASE, "core/NumberReplacer", line, mutated,
          "row and column groupings ignore xdimen/ydimen (only blocks read them)")
      for line, mutated in (
          *[(_ROW.format(0, 0), _ROW.format(x, y)) for x, y in ((1, 0), (-1, 0), (0, 1), (0, -1))],
          *[(_COLUMN, _COLUMN.replace("0.0),", f"0.0), {x}, 0)]")) for x in (1, -1)],
          *[("0, 0)]", f"0, {y})]") for y in (1, -1)])],
    # -- the update rules with one history blob per param (history_count = 1)
    *[_eq(module, "core/NumberReplacer", f"{name} = history[0]", f"{name} = history[ -1]",
          "the history of this rule holds one blob per param (history_count = 1), so index 0 "
          "and -1 are the same blob") for module, name in (
        ("minicaffe/solver/sgd.py", "v"), ("minicaffe/solver/nesterov.py", "v"),
        ("minicaffe/solver/adagrad.py", "h"), ("minicaffe/solver/rmsprop.py", "h"))],
    # -- pooling-size
    _eq(POOL, "core/ReplaceComparisonOperator_Eq_LtE",
        'out.append((-(-span // s) if round_mode == "CEIL" else span // s) + 1)',
        'out.append((-(-span // s) if round_mode <= "CEIL" else span // s) + 1)',
        "round_mode is CEIL or FLOOR (the schema's enum); 'FLOOR' <= 'CEIL' is false"),
    _eq(POOL, "core/ReplaceComparisonOperator_Eq_GtE", 'if self.method == "STOCHASTIC":',
        'if self.method >= "STOCHASTIC":', "pool is MAX, AVE or STOCHASTIC (the schema's enum); "
        "of them only STOCHASTIC >= 'STOCHASTIC'"),
    *[_eq(POOL, op, 'if len(top) == 2 and self.method != "MAX":', mutated, why)
      for op, mutated, why in (
          ("core/ReplaceComparisonOperator_Eq_GtE",
           'if len(top) >= 2 and self.method != "MAX":',
           "Pooling takes at most 2 tops (max_tops, checked before setup)"),
          ("core/ReplaceComparisonOperator_NotEq_Lt",
           'if len(top) == 2 and self.method < "MAX":',
           "STOCHASTIC was refused just above; of MAX and AVE only AVE < 'MAX'"))],
    *[_eq(POOL, op, "if bottom[0].ndim != 4:", mutated,
          "reshape (always run after setup) refuses a bottom that is not 4-D with the same "
          "LayerSetupError and message") for op, mutated in (
        ("core/ReplaceComparisonOperator_NotEq_Lt", "if bottom[0].ndim < 4:"),
        ("core/ReplaceComparisonOperator_NotEq_Gt", "if bottom[0].ndim > 4:"),
        ("core/NumberReplacer", "if bottom[ -1].ndim != 4:"))],
    _eq(POOL, "core/NumberReplacer", "x = bottom[0]", "x = bottom[ -1]",
        "Pooling takes exactly one bottom (exact_bottoms, checked before setup)"),
    _eq(POOL, "core/ReplaceComparisonOperator_NotEq_IsNot", "if self._key != (x.shape, x.dtype):",
        "if self._key is not (x.shape, x.dtype):",
        "the key only caches the output size: recomputing it on every reshape gives the same "
        "sizes"),
    *[_eq(POOL, "core/ReplaceComparisonOperator_LtE_Eq", line, mutated,
          "kernel and stride fields are uint32 in the schema: a negative value is refused when "
          "the prototxt or the message is built, so <= 0 and == 0 agree")
      for line, mutated in (
          ("if self.kh <= 0 or self.kw <= 0:", "if self.kh == 0 or self.kw <= 0:"),
          ("if self.kh <= 0 or self.kw <= 0:", "if self.kh <= 0 or self.kw == 0:"),
          ("if self.sh <= 0 or self.sw <= 0:", "if self.sh == 0 or self.sw <= 0:"),
          ("if self.sh <= 0 or self.sw <= 0:", "if self.sh <= 0 or self.sw == 0:"))],
    _eq(POOL, "core/NumberReplacer", "self.sh = self.sw = 1", "self.sh = self.sw = 2",
        "global pooling has one window per axis (kernel = plane, no pad): ceil(0 / s) + 1 = 1 "
        "for any stride"),
    *[_eq(POOL, "core/NumberReplacer", f'{lhs} = pair(self, bottom, p, "{name}", {v}, '
          "repeated=False)", f'{lhs} = pair(self, bottom, p, "{name}", {m}, repeated=False)',
          "pair's default is used only for a field the message lacks; pooling_param always has "
          "kernel_size, pad and stride (the schema's defaults 0, 0, 1)")
      for lhs, name, v, m in (("self.kh, self.kw", "kernel", 0, 1),
                              ("self.kh, self.kw", "kernel", 0, -1),
                              ("self.ph, self.pw", "pad", 0, 1), ("self.ph, self.pw", "pad", 0, -1),
                              ("self.sh, self.sw", "stride", 1, 2),
                              ("self.sh, self.sw", "stride", 1, 0))],
    # -- weights
    *[_eq(WEIGHTS, op, line, mutated, why) for op, line, mutated, why in (
        ("core/ReplaceComparisonOperator_Eq_LtE", "if key & 7 == wire.VARINT:",
         "if key & 7 <= wire.VARINT:", "VARINT is 0 and a wire type is never negative"),
        ("core/ReplaceComparisonOperator_Eq_Is", "if key & 7 == wire.VARINT:",
         "if key & 7 is wire.VARINT:", "wire types 0-7 are CPython's cached small ints"),
        ("core/ReplaceComparisonOperator_NotEq_IsNot", "if key & 7 != wire.LEN:",
         "if key & 7 is not wire.LEN:", "wire types 0-7 are CPython's cached small ints"),
        ("core/ReplaceComparisonOperator_Eq_GtE",
         "names.append(fields.string(1 if key >> 3 == 100 else 4))",
         "names.append(fields.string(1 if key >> 3 >= 100 else 4))",
         "only fields 100 and 2 reach this line"),
        ("core/ReplaceComparisonOperator_Gt_GtE", "if pos + length > n:",
         "if pos + length >= n:", "the note is written only when wire.parse failed, and every "
         "record the scan accepts wire.parse accepted: a record ending at the last byte leaves "
         "nothing after it to fail, so the scan never reaches one"),
        ("core/ReplaceOrWithAnd", "if len(a) > 4 or len(b) > 4:",
         "if len(a) > 4 and len(b) > 4:", "equal shapes returned above, and padding to 4 axes "
         "never makes tuples of different lengths equal (a longer tuple is left as it is)"),
        ("core/NumberReplacer", "if len(a) > 4 or len(b) > 4:", "if len(a) > 5 or len(b) > 4:",
         "as above: a 5-axis shape padded is still 5 axes, unequal to any other padded shape"),
        ("core/NumberReplacer", "if len(a) > 4 or len(b) > 4:", "if len(a) > 4 or len(b) > 5:",
         "as above: a 5-axis shape padded is still 5 axes, unequal to any other padded shape"),
        ("core/ReplaceComparisonOperator_Eq_GtE", "if array.dtype == np.float64:",
         "if array.dtype >= np.float64:", "encode_blob's one caller passes float32 or float64 "
         "arrays only (encode_caffemodel casts the rest), and float32 >= float64 is false in "
         "NumPy's safe-cast order"),
        ("core/NumberReplacer", "w.packed_doubles(8, array.reshape(-1))",
         "w.packed_doubles(8, array.reshape(- 2))",
         "NumPy takes any negative size as the one unknown dimension"),
        ("core/NumberReplacer", "w.packed_floats(5, array.reshape(-1))",
         "w.packed_floats(5, array.reshape(- 2))",
         "NumPy takes any negative size as the one unknown dimension"),
        ("core/NumberReplacer", 'k, where = 0, ""', 'k, where = 1, ""',
         "k is set by enumerate before any use"),
        ("core/NumberReplacer", 'k, where = 0, ""', 'k, where = -1, ""',
         "k is set by enumerate before any use"),
        ("core/ReplaceComparisonOperator_NotEq_IsNot", 'for layer in net.layers if layer.type '
         '!= "Split"]', 'for layer in net.layers if layer.type is not "Split"]',
         'the Net inserts Split layers with the type literal "Split", the same interned string'),
        ("core/ReplaceComparisonOperator_NotEq_IsNot", 'if array.ndim != 1 or array.dtype.kind '
         '!= "U":', 'if array.ndim != 1 or array.dtype.kind is not "U":',
         "NumPy returns its cached one-character string for dtype.kind"),
    )],
    *[_eq(WEIGHTS, op, "while pos < n:", mutated,
          "pos never passes n (a record running past the end breaks first), and at pos == n "
          "decode_varint raises WireError, which ends the scan the same way")
      for op, mutated in (("core/ReplaceComparisonOperator_Lt_NotEq", "while pos != n:"),
                          ("core/ReplaceComparisonOperator_Lt_LtE", "while pos <= n:"),
                          ("core/ReplaceComparisonOperator_Lt_IsNot", "while pos is not n:"))],
    *[_eq(WEIGHTS, op, "if array.dtype != np.float64:", mutated,
          "Writer.packed_floats casts to float32 itself, so casting here or not writes the same "
          "bytes; float64 arrays are never cast in any variant")
      for op, mutated in (("core/ReplaceComparisonOperator_NotEq_Lt",
                           "if array.dtype < np.float64:"),
                          ("core/ReplaceComparisonOperator_NotEq_Gt",
                           "if array.dtype > np.float64:"),
                          ("core/ReplaceComparisonOperator_NotEq_Is",
                           "if array.dtype is np.float64:"))],
    # -- conv-size
    _eq(GEOMETRY, "core/ReplaceComparisonOperator_NotEq_Lt",
        "if int(value) != value or value < low:", "if int(value) < value or value < low:",
        "int() truncates toward zero, so int(value) > value only for a negative non-integer, "
        "which value < low refuses anyway (every minimum is >= 0)"),
]


def _changed_lines(diff):
    """(original, mutated) first changed lines of a unified diff, stripped."""
    old = new = ""
    for line in diff.splitlines():
        if line.startswith("-") and not line.startswith("---") and not old:
            old = line[1:].strip()
        elif line.startswith("+") and not line.startswith("+++") and not new:
            new = line[1:].strip()
    return old, " ".join(new.split())


def equivalent_of(module, operator, diff):
    """The Equivalent entry matching a survivor, or None."""
    old, new = _changed_lines(diff)
    for e in EQUIVALENT:
        if (e.module, e.operator, e.line) == (module, operator, old) and \
                (e.mutated is None or " ".join(e.mutated.split()) == new):
            return e
    return None


def _line_ranges(path, names):
    """[(first, last)] source lines of the named functions / methods / properties of `path`."""
    tree = ast.parse(path.read_text())
    found = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                found[prefix + child.name] = (first, child.end_lineno)

    visit(tree, "")
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"mutation: {path}: no function {', '.join(missing)} to scope to")
    return [found[n] for n in names]


def _config(name, target, wrap=()):
    command = [*wrap, sys.executable, "-m", "pytest", "-x", "-q", "--no-header", "-p", "no:cacheprovider",
               *target.tests]
    modules = ", ".join(f'"{m}"' for m in target.modules)
    return textwrap.dedent(f"""\
        [cosmic-ray]
        module-path = [{modules}]
        timeout = {target.timeout}
        excluded-modules = []
        test-command = "{' '.join(command)}"

        [cosmic-ray.distributor]
        name = "local"
        """)


# cosmic-ray replaces every binary operator by every other one (11 mutants per `+`, most of
# them `+` -> `<<` and the like, which fail on floats at once). Like mutmut, keep the natural
# counterpart of each operator; the other operator families (comparisons, numbers, unary
# operators, `not`, True/False, break/continue, zero-iteration loops, exception handlers,
# decorators, ...) are kept whole.
BINARY_KEPT = {("Add", "Sub"), ("Sub", "Add"), ("Mult", "Div"), ("Div", "Mult"),
               ("FloorDiv", "Div"), ("FloorDiv", "Mult"), ("Mod", "FloorDiv"), ("Pow", "Mult"),
               ("LShift", "RShift"), ("RShift", "LShift"), ("BitOr", "BitAnd"),
               ("BitAnd", "BitOr"), ("BitXor", "BitOr"), ("MatMult", "Mult")}


def _operator_kept(name):
    if "ReplaceBinaryOperator_" in name:
        return tuple(name.rsplit("ReplaceBinaryOperator_", 1)[1].split("_")) in BINARY_KEPT
    if "ReplaceUnaryOperator_" in name:           # ~x on floats and `not` on numbers: noise
        return not name.endswith(("_Invert", "_Not"))
    return True


def _filter(session, target):
    """Mark the mutants outside `target.scope` or of a dropped operator as skipped (they are
    neither run nor counted)."""
    from cosmic_ray.work_db import WorkDB, use_db                  # noqa: PLC0415
    from cosmic_ray.work_item import WorkerOutcome, WorkResult     # noqa: PLC0415

    ranges = _line_ranges(ROOT / target.modules[0], target.scope) if target.scope else None
    scoped = Path(target.modules[0])
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            m = item.mutations[0]
            line = m.start_pos[0]
            why = None
            if not _operator_kept(m.operator_name):
                why = "operator not in the kept set"
            elif ranges is not None and not (Path(m.module_path) == scoped
                                             and any(a <= line <= b for a, b in ranges)):
                why = "outside the target's scope"
            if why:
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED,
                                                      output=why))


def _retest_survivors(session):
    """Forget the results of surviving mutants, so the next exec runs them again (after new
    tests were written)."""
    import sqlite3                                                 # noqa: PLC0415

    with sqlite3.connect(session) as con:
        con.execute("DELETE FROM work_results WHERE test_outcome IN ('survived', 'SURVIVED')")


def run(name, fresh=False, retest=False, wrap=()):
    target = TARGETS[name]
    OUT.mkdir(exist_ok=True)
    config, session = OUT / f"{name}.toml", OUT / f"{name}.sqlite"
    config.write_text(_config(name, target, wrap))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if fresh or not session.exists():
        session.unlink(missing_ok=True)
        subprocess.run(["cosmic-ray", "init", str(config), str(session)], cwd=ROOT, env=env,
                       check=True)
        _filter(session, target)
    elif retest:
        _retest_survivors(session)
    print(f"mutation: {name}: {', '.join(target.modules)} against {' '.join(target.tests)}",
          flush=True)
    subprocess.run(["cosmic-ray", "exec", str(config), str(session)], cwd=ROOT, env=env,
                   check=True)


def results(name):
    """(counts dict, [(job id, module, line, operator, diff, Equivalent or None)] of the
    survivors) of a session."""
    from cosmic_ray.work_db import WorkDB, use_db                  # noqa: PLC0415
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome    # noqa: PLC0415

    counts = dict(mutants=0, killed=0, survived=0, equivalent=0, incompetent=0, pending=0)
    survivors = []
    with use_db(str(OUT / f"{name}.sqlite"), WorkDB.Mode.open) as db:
        done = dict(db.results)
        for item in db.work_items:
            result = done.get(item.job_id)
            if result is not None and result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            counts["mutants"] += 1
            if result is None:
                counts["pending"] += 1
            elif result.test_outcome == TestOutcome.KILLED:
                counts["killed"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                m = item.mutations[0]
                same = equivalent_of(str(m.module_path), m.operator_name, result.diff or "")
                counts["equivalent" if same else "survived"] += 1
                survivors.append((item.job_id, str(m.module_path), m.start_pos[0],
                                  m.operator_name, result.diff or "", same))
            else:                                   # the mutant did not import / run at all
                counts["incompetent"] += 1
    return counts, survivors


def report(names, show_survivors=True):
    rows = []
    for name in names:
        if not (OUT / f"{name}.sqlite").exists():
            continue
        counts, survivors = results(name)
        tested = counts["killed"] + counts["survived"]
        score = 100.0 * counts["killed"] / tested if tested else float("nan")
        rows.append((name, counts, score))
        live = [s for s in survivors if s[5] is None]
        if show_survivors and live:
            print(f"\n== {name}: {len(live)} surviving mutant(s) not judged equivalent")
            for job, module, line, operator, diff, _ in live:
                print(f"-- {module}:{line} {operator} ({job})")
                print(textwrap.indent(diff.strip(), "   "))
    print("\n| target | mutants | killed | survived | equivalent | incompetent | pending "
          "| score: killed / (mutants - equivalent - incompetent) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, c, score in rows:
        print(f"| {name} | {c['mutants']} | {c['killed']} | {c['survived']} | {c['equivalent']} "
              f"| {c['incompetent']} | {c['pending']} | {score:.1f}% |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--report", action="store_true", help="print the table only")
    parser.add_argument("--fresh", action="store_true", help="start the targets' sessions over")
    parser.add_argument("--retest-survivors", action="store_true",
                        help="run the surviving mutants again (after adding tests)")
    parser.add_argument("--wrap", default="",
                        help="command put before each mutant's test run, e.g. a lock on a shared "
                             "machine (--wrap cpujob)")
    parser.add_argument("--list", action="store_true", help="list the targets")
    args = parser.parse_args(argv)
    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    if args.list:
        for name, t in TARGETS.items():
            scope = f" [{', '.join(t.scope)}]" if t.scope else ""
            print(f"{name}: {', '.join(t.modules)}{scope} <- {' '.join(t.tests)}")
        return 0
    if not args.report:
        for name in names:
            run(name, fresh=args.fresh, retest=args.retest_survivors, wrap=args.wrap.split())
    report(names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
