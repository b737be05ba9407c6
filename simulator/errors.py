"""Errors a user can cause. Each carries a one-line message that says what to do; the CLI
prints it and exits with status 2, without a traceback."""


class SimulatorError(Exception):
    """Base class of every error the user can fix."""


class OptionError(SimulatorError):
    """An option or argument has a value that is not allowed."""


class InputError(SimulatorError):
    """An input file is missing, truncated or malformed."""


class TraceFormatError(SimulatorError):
    """A directory is not a scratchsim trace, or its files do not agree with meta.json."""


class CapacityError(SimulatorError):
    """A cache or scratchpad is too small for what the trace asks of it."""
