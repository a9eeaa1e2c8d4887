"""The errors detente raises for problems a user can fix or must know about.

Library code raises these (never prints and exits); the command line turns
each into one line on standard error: exit status 2 for a :class:`UserError`
(something the user can fix: a config, a name, a folder), 1 for a run that
had to stop. Every message is one line that names what is wrong and, where
there is a choice, the valid ones.
"""

from __future__ import annotations


class DetenteError(Exception):
    """Base class: a problem worth one clear line to the user, not a traceback."""


class UserError(DetenteError):
    """Something the user can fix: a config, an agent name, a folder, a missing model."""


class ConfigError(UserError, ValueError):
    """A config file, override or agent name is wrong."""


class NonFiniteError(DetenteError, ArithmeticError):
    """A model produced NaN or infinite numbers: a distribution to sample from, a loss or a gradient."""


class TrainingStopped(DetenteError):
    """Training cannot go on (repeated non-finite updates, lost training data); the run stays resumable
    from its last good checkpoint."""


class WorkersLost(DetenteError):
    """Remote rollout workers kept dying on the same work: the run stopped instead of retrying forever."""
