"""The exceptions gradc raises. Every error a user can trigger is one of these (or a plain
TypeError/ValueError at call time), and its message names the culprit."""


class GradcError(Exception):
    """Base class of every gradc error."""


class SpecError(GradcError, ValueError):
    """An MLP spec (or an expression string) is invalid; the message names the field path and value."""


class UnsupportedError(GradcError, NotImplementedError):
    """A construct gradc cannot compile (unknown SymPy node, op without a VJP, ...); the message names it."""


class GradcWarning(UserWarning):
    """A hint about how gradc read an expression; the module compiled is right regardless."""
