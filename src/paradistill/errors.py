"""User-facing errors.

`UserError` is raised for bad input (files, options, configs, checkpoints). Its message names the input and
says what to do; the CLI prints it without a traceback.
"""


class UserError(ValueError):
    """Bad input from the user: the message names the input and the fix."""


class TrainingDiverged(RuntimeError):
    """A non-finite loss or gradient stopped training; the message names the step and last good checkpoint."""
