"""Generated source -> imported module, through a content-addressed file.

The file lives at <cache>/<sha256 of the source>.py, so Numba's `cache=True` keys its on-disk cache
to a real file (a second process loads the compiled kernels instead of compiling) and a changed
input can never load a stale kernel: different source, different file. Files are written
atomically (temporary file + rename), so concurrent compilers of the same input share one entry
and a half-written file is never imported; a cached file whose text does not match its name is
rewritten.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

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


def load_source(source: str, shared: Sequence[tuple[str, str]] = ()) -> ModuleType:
    """Import generated `source` through its content-addressed cache file (one import per process). `shared`:
    (name, text) of each module that `source` imports by that name, in order, imported first the same way (a
    name's stem, `gradc_support_` or `gradc_act_`, is its cache file's)."""
    with _lock:
        for name, text in shared:
            if name not in sys.modules:
                import_file(_cached_file(text, name.rpartition("_")[0] + "_"), name)
        path = _cached_file(source)
        name = f"gradc_generated.{path.stem}"
        module = sys.modules.get(name)
        if module is None or getattr(module, "__file__", None) != str(path):
            module = import_file(path, name)
        return module
