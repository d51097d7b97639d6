"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class DifmachineError(Exception):
    """A user mistake or a bad file; the message names the problem and the fix."""


class ProgramError(DifmachineError):
    """A program file that cannot be loaded."""


class CheckpointError(DifmachineError):
    """A checkpoint that is missing, corrupt or from a different program."""


class SpecError(DifmachineError):
    """A component spec whose hyperparameter is not static (see :func:`difmachine.specs.check_spec`)."""


class CompileError(DifmachineError, ValueError):
    """A machine that cannot be compiled for its task (e.g. a readout narrower than the task's
    output). A ``ValueError`` too, for callers of :func:`difmachine.compile`."""
