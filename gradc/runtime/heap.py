"""Support code for every generated module: keep the memory of freed arrays for the next call.

The text below the RUNTIME marker is copied verbatim into every generated module (which must not
import gradc): the standard library only. It runs once when the module is imported.
"""
# --- RUNTIME ---
import ctypes
import os
import platform


def _retain_freed_memory(environ=os.environ):
    """On glibc, let freed blocks under 32 MiB (up to 256 MiB of them) stay in the heap for reuse, instead
    of going back to the system. Returns whether it did.

    Why: each call returns fresh arrays, and the previous call's are freed. With glibc's defaults that
    memory is unmapped or trimmed, and the next call's arrays fault every page in again, zeroed by the
    kernel, which can cost a large call more time than its arithmetic. The setting is the process's, so
    other code allocating there gains too. Left alone: off glibc, with GRADC_MALLOC_TUNING=0, and when the
    environment sets glibc's own malloc tunables (MALLOC_*_ or GLIBC_TUNABLES=glibc.malloc.*)."""
    if environ.get("GRADC_MALLOC_TUNING", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", "") or any(
            k.startswith("MALLOC_") and k.endswith("_") for k in environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3   # malloc.h
    # 32 MiB is the largest mmap threshold glibc accepts; 1 = accepted
    return mallopt(m_mmap_threshold, 32 << 20) == 1 and mallopt(m_trim_threshold, 256 << 20) == 1


_retain_freed_memory()
