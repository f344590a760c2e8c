"""gradc: SymPy expressions and MLP specs -> readable, Numba-compiled gradient code.

Public API: compile, compile_expr, compile_mlp, load, explain, and the errors.
"""

__version__ = "0.1.0"

from gradc.errors import GradcError, GradcWarning, SpecError, UnsupportedError  # noqa: E402
from gradc.jit import initialise_numba_in_background  # noqa: E402
from gradc.pipeline import compile, compile_expr, compile_mlp  # noqa: E402
from gradc.tools.explain import explain  # noqa: E402

initialise_numba_in_background()   # Numba's 0.2 s start-up, while the caller reads its data


def load(path):
    """Import a module written by `write(path)` (it needs only numpy and numba)."""
    from gradc.jit import import_file

    return import_file(path)


__all__ = ["compile", "compile_expr", "compile_mlp", "load", "explain", "GradcError", "GradcWarning", "SpecError",
           "UnsupportedError", "__version__"]
