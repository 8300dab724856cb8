"""The one base class of the errors that are the user's to fix, and the few generic ones.

The command line shows an ``AlcycleError`` as its message alone (exit status 1); any other
exception is a bug and keeps its traceback. A module with a domain of its own (params,
sources, annotations, the cycle, the oracle, review) defines its error there as a subclass;
each also subclasses the builtin it replaced, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class AlcycleError(Exception):
    """Something the user gave (a parameter, a file, a command) is wrong; the message says what to do."""


class MissingInputError(AlcycleError, FileNotFoundError):
    """A file the command needs is not there; the message names the command that writes it."""


class ExternalCommandError(AlcycleError, RuntimeError):
    """A tool alcycle runs for the user (git, dvc) refused; the message carries its own."""


class BadFileError(AlcycleError, ValueError):
    """A file the user gave or edited (a manifest, the labeled pool, a weights file) has the
    wrong shape; the message names the file and what was expected."""


class ParamsError(AlcycleError, ValueError):
    """``params.yaml`` is missing a key, has an unknown one, or a value of the wrong type or
    outside its choices (a name no registry holds)."""
