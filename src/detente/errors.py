"""The errors detente raises for problems a user can fix or must know about.

Library code raises these (never prints and exits); the command line turns
each into one line on standard error and exit status 2. Every message is one
line that names what is wrong and, where there is a choice, the valid ones.
"""

from __future__ import annotations


class DetenteError(Exception):
    """Base class: a problem worth one clear line to the user, not a traceback."""


class ConfigError(DetenteError, ValueError):
    """A config file, override or agent name is wrong."""


class NonFiniteError(DetenteError, ArithmeticError):
    """A model produced NaN or infinite numbers: a distribution to sample from, a loss or a gradient."""


class TrainingStopped(DetenteError):
    """Training cannot go on (repeated non-finite updates, lost training data); the run stays resumable
    from its last good checkpoint."""
