"""The one error type a person can be shown: what was wrong, and what to do."""


class InputError(ValueError):
    """Bad input from a person (a file that is not audio, an image too small, ...).

    The message is meant to be shown as is, on a page or as a CLI's one-line error.
    """


class ModelFileError(RuntimeError):
    """A model file or its card is missing, corrupt or does not match its card."""
