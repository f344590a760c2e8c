"""A compiled module as it travels to Dask workers: its source text, compiled once per worker process.

A worker assumes nothing of the client's disk: it receives the module's text (tens of kilobytes), links
and imports it through its own content-addressed cache ($GRADC_CACHE_DIR of the worker's environment),
and keeps the import in a module-level table keyed by the text's digest, so every later task of the same
module in that process reuses it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from types import ModuleType

from gradc.jit import source_digest

_LOADED: dict[str, ModuleType] = {}   # source digest -> the imported module, in this process
_LOCK = threading.Lock()


class Kernel:
    """A module's source text and runtimes: small, picklable, and identified by the text's digest (its Dask
    token), so that a graph naming it twice ships it once."""

    def __init__(self, source: str, runtimes: tuple[str, ...]):
        self.source = source
        self.runtimes = tuple(runtimes)
        self.digest = source_digest(source)

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("gradc.Kernel", self.digest)

    @property
    def module(self) -> ModuleType:
        """The imported module in this process (compiled, or loaded from this machine's cache, on first use)."""
        module = _LOADED.get(self.digest)
        if module is None:
            with _LOCK:
                module = _LOADED.get(self.digest)
                if module is None:
                    module = _LOADED[self.digest] = _import(self.source, self.runtimes)
        return module

    def __repr__(self) -> str:
        return f"Kernel({self.digest[:12]})"


def _retain_freed_memory_on_a_worker(environ: Mapping[str, str] = os.environ) -> bool:
    """Keep freed arrays' memory for the next task (gradc/runtime/heap.py) in a worker process whose only malloc
    setting is the one distributed's nanny gives every worker (MALLOC_TRIM_THRESHOLD_, from its
    `distributed.nanny.pre-spawn-environ` config): a generated module leaves malloc alone where the environment
    tunes it, and under that setting each task faults its arrays' pages in again, which made a worker's
    training step twice as slow as the same step in memory. A value the user chose, GRADC_MALLOC_TUNING=0, or
    any other malloc tunable is left alone. Returns whether it tuned."""
    value = environ.get("MALLOC_TRIM_THRESHOLD_")
    if value is None or "distributed" not in sys.modules:
        return False
    import dask

    if str(dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_", None)) != value:
        return False
    from gradc.runtime.heap import _retain_freed_memory

    return _retain_freed_memory({k: v for k, v in environ.items() if k != "MALLOC_TRIM_THRESHOLD_"})


def _import(source: str, runtimes: tuple[str, ...]) -> ModuleType:
    """Import `source` as CompiledModule.module does (linked to this machine's shared support module)."""
    from gradc.module import CompiledModule

    if not _LOADED:   # the process's first module
        _retain_freed_memory_on_a_worker()

    compiled = CompiledModule(source, {})
    compiled.runtimes = runtimes
    return compiled.module


def kernel_of(compiled, derivatives: bool = False) -> Kernel:
    """The Kernel of a CompiledModule (made once per module object and kind). An expression module that emits
    its Jacobian, Hessian, JVP and HVP kernels apart (`_gradient_source`, the text without them) sends that text
    unless `derivatives` are asked for: forward and the gradients need no more, and emitting the rest costs."""
    partial = None if derivatives else getattr(compiled, "_gradient_source", None)
    source = compiled.source if partial is None else partial
    kernels = compiled.__dict__.setdefault("_kernels", {})
    kernel = kernels.get(derivatives)
    if kernel is None or kernel.source is not source:
        kernel = kernels[derivatives] = Kernel(source, compiled.runtimes)
    return kernel


def loaded_files() -> list[str]:
    """The files of the modules this process has imported through Kernels (what a test asks a worker)."""
    return sorted(str(getattr(m, "__file__", "")) for m in _LOADED.values())
