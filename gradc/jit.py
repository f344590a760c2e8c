"""Generated source -> imported module, through a content-addressed file.

The file lives at <cache>/<sha256 of the source>.py, so Numba's `cache=True` keys its on-disk cache
to a real file (a second process loads the compiled kernels instead of compiling) and a changed
input can never load a stale kernel: different source, different file. Files are written
atomically (temporary file + rename), so concurrent compilers of the same input share one entry
and a half-written file is never imported; a cached file whose text does not match its name is
rewritten.

Numba's own cache is not safe for processes that compile into one folder at the same time: to save a new
signature of a function, a process reads the function's index, numbers a data file after the ones the index
lists, writes it and rewrites the index. Two processes adding different signatures at once pick the same
number, so the index can name one's machine code under the other's signature, and a later process that loads
it crashes (Numba issue 4807; two Dask workers, a process pool or two notebooks on one machine do exactly
this with the shared support code, which compiles a signature per dtype and layout). So once a process has
imported a module through this file, whenever it holds Numba's compiler lock (compiling or loading from the
cache, any function of the process) it also holds an exclusive lock on the cache folder's `.compile.lock`:
processes sharing a cache compile one at a time, and the second loads what the first saved instead of
compiling it again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numba.core.event

try:
    import fcntl
except ImportError:   # Windows: no flock; compilers sharing a folder there are not serialised
    fcntl = None

_lock = threading.Lock()


def cache_dir() -> Path:
    """$GRADC_CACHE_DIR, else ~/.cache/gradc (created on demand)."""
    root = os.environ.get("GRADC_CACHE_DIR") or Path.home() / ".cache" / "gradc"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` via a temporary file in the same folder and a rename: readers see the
    old file or the new one, never a part. Creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)   # mkstemp makes 0600; a written module is an ordinary readable file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _cached_file(source: str, stem: str = "gradc_") -> Path:
    """The content-addressed file `<stem><digest>.py` holding `source`, (re)written if missing or corrupted."""
    digest = source_digest(source)
    path = cache_dir() / f"{stem}{digest[:32]}.py"
    try:
        intact = source_digest(path.read_text(encoding="utf-8")) == digest
    except (OSError, UnicodeDecodeError):
        intact = False
    if not intact:
        write_atomic(path, source)
    return path


def import_file(path: str | os.PathLike, module_name: str | None = None) -> ModuleType:
    """Import the Python file at `path` as a fresh module object."""
    path = Path(path)
    name = module_name or f"gradc_generated.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # Numba's cache locates functions through their module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


class _CacheFolderLock(numba.core.event.Listener):
    """Holds an exclusive flock on <cache>/.compile.lock from the start of the outermost acquisition of Numba's
    compiler lock (its "numba:compiler_lock" event) to the end, in any thread of this process. Numba's lock is
    re-entrant and per-process: a thread's nested acquisitions are counted in that thread, and the flock is
    taken by the first thread to start and released when the last one ends."""

    def __init__(self) -> None:
        self._depth = threading.local()
        self._mutex = threading.Lock()
        self._threads = 0              # threads inside Numba's compiler lock, or waiting for it
        self._fd: int | None = None

    def on_start(self, event: numba.core.event.Event) -> None:
        depth = getattr(self._depth, "n", 0)
        self._depth.n = depth + 1
        if depth:
            return
        with self._mutex:
            if self._threads == 0:
                self._fd = _locked(cache_dir)
            self._threads += 1

    def on_end(self, event: numba.core.event.Event) -> None:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:   # the thread took Numba's lock before this listener was registered: no flock to release
            return
        self._depth.n = depth - 1
        if self._depth.n:
            return
        with self._mutex:
            self._threads -= 1
            if self._threads == 0 and self._fd is not None:
                fd, self._fd = self._fd, None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def _locked(folder: Callable[[], Path]) -> int | None:
    """A descriptor of `folder()`/.compile.lock holding its exclusive flock (waits while another process
    holds it), or None where the folder or the file cannot be made: compiling then goes on unserialised
    rather than failing the user's compile."""
    try:
        fd = os.open(folder() / ".compile.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


_folder_lock: _CacheFolderLock | None = None


def _serialise_compilers() -> None:
    """Register the cache folder lock for Numba's compiler lock, once per process (not on Windows)."""
    global _folder_lock
    if _folder_lock is None and fcntl is not None:
        _folder_lock = _CacheFolderLock()
        numba.core.event.register("numba:compiler_lock", _folder_lock)


_numba_ready: threading.Thread | None = None


def _initialise_numba() -> None:
    """What a fresh process's first kernel call (compiled or loaded from the cache) spends 0.2 s on first:
    Numba's typing and target contexts loading their registries. Under Numba's compiler lock, as Numba does it."""
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    try:
        with global_compiler_lock:
            cpu_target.typing_context.refresh()
            cpu_target.target_context.refresh()
    except Exception:   # noqa: BLE001 - the first kernel call then does it, and says what is wrong
        pass


def initialise_numba_in_background() -> None:
    """Start `_initialise_numba` in a daemon thread, once per process, so that it runs while the caller goes on
    (reading data, building an expression) and the first kernel call does not wait for it; a call that comes
    sooner waits for the rest on Numba's lock. A fork waits for it to end: the child would otherwise inherit
    Numba's compiler lock held by a thread it does not have. GRADC_PRELOAD=0 turns it off."""
    global _numba_ready
    if _numba_ready is not None or os.environ.get("GRADC_PRELOAD", "1") == "0":
        return
    _numba_ready = threading.Thread(target=_initialise_numba, name="gradc-numba-init", daemon=True)
    _numba_ready.start()
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_numba_ready.join)


def load_source(source: str, shared: Sequence[tuple[str, str]] = ()) -> ModuleType:
    """Import generated `source` through its content-addressed cache file (one import per process). `shared`:
    (name, text) of each module that `source` imports by that name, in order, imported first the same way (a
    name's stem, `gradc_support_` or `gradc_act_`, is its cache file's)."""
    with _lock:
        _serialise_compilers()
        for name, text in shared:
            if name not in sys.modules:
                import_file(_cached_file(text, name.rpartition("_")[0] + "_"), name)
        path = _cached_file(source)
        name = f"gradc_generated.{path.stem}"
        module = sys.modules.get(name)
        if module is None or getattr(module, "__file__", None) != str(path):
            module = import_file(path, name)
        return module
