"""Exceptions raised by minicaffe. All user-facing errors are ValueError subclasses."""


class MinicaffeError(Exception):
    """Base class of every minicaffe error."""


class ParseError(MinicaffeError, ValueError):
    """A prototxt file or string is malformed; carries `path`, `line`, `column` (1-based)."""

    def __init__(self, message, path=None, line=None, column=None, source_line=None,
                 caret_column=None):
        """`source_line` is shown under the message with a caret at `caret_column` (default
        `column`; differs when only an excerpt of a long line is shown)."""
        self.path, self.line, self.column = path, line, column
        self.message = message
        where = ""
        if line is not None:
            where = f"{path or '<string>'}:{line}:{column}: "
        text = where + message
        caret = caret_column if caret_column is not None else column
        if source_line is not None and caret is not None:
            text += "\n    " + source_line.rstrip("\n") + "\n    " + " " * (caret - 1) + "^"
        super().__init__(text)


class LayerSetupError(MinicaffeError, ValueError):
    """A layer cannot be built: wrong bottoms, shapes or parameters (message names the layer)."""


class ShapeError(LayerSetupError):
    """A blob shape does not match what a layer expects."""


class FillerError(LayerSetupError):
    """A filler cannot fill a blob (unknown type, non-finite or out-of-range parameter).

    `filler_param` is the FillerParameter at fault, so the Net can name the layer and the field
    (`convolution_param.weight_filler`) that holds it."""

    def __init__(self, message, filler_param=None):
        super().__init__(message)
        self.filler_param = filler_param


class AllocationError(MinicaffeError, MemoryError):
    """An array cannot be allocated; the message names the blob, its shape and the bytes asked
    for (a Net adds the layer). A MemoryError, so `except MemoryError` still catches it."""


class KernelError(MinicaffeError, ValueError):
    """Bad arguments to a compiled or reference kernel."""


class DataError(MinicaffeError, ValueError):
    """A data source is missing, truncated or inconsistent (message names the file and record)."""


class SolverError(MinicaffeError, ValueError):
    """A solver configuration cannot run."""


class SnapshotError(MinicaffeError, OSError):
    """A snapshot could not be written (full disk, file-size limit, permissions); nothing of it
    was kept and the previous snapshot is intact. An OSError: `errno` and `filename` are the
    failed write's."""

    def __init__(self, message, errno=None, filename=None):
        super().__init__(message)
        self.message = message
        self.errno, self.filename = errno, filename

    def __str__(self):
        return self.message


class DivergenceError(MinicaffeError, RuntimeError):
    """Training produced a non-finite loss; names the first layer with a non-finite output."""


class ParallelError(MinicaffeError, RuntimeError):
    """Data-parallel training (minicaffe.parallel) cannot start or go on: MPI is missing or
    misconfigured, the replicas disagree (configuration, weights), or a replica stopped
    answering. The message names the rank."""


class ExportError(MinicaffeError, ValueError):
    """A net cannot be exported (to ONNX): the message names the layer, its type and what
    the target format cannot express."""
