"""Keeping freed memory for reuse during a run, on Linux's C library (glibc).

PyTorch's CPU tensors come from the C library's ``malloc``. glibc maps every block over 32 MiB
(and, after some frees, smaller ones) afresh from the kernel and unmaps it when freed, so each
step of a large fit asks the kernel for new zeroed pages: at 1024×768 a 32-channel step made
over 200 000 page faults and spent nearly a third of its time in the kernel, and the Wiener
filter after the fit 12 million (README, "Speed"). With :func:`keep_freed_memory` on, blocks
come from the heap instead and up to :data:`KEEP_BYTES` of freed memory stays there for the
next step; turned off, glibc's defaults return and what was kept goes back to the kernel
(``malloc_trim``). It changes where memory comes from, never what is computed. It costs
memory (the heap fragments: the peak grew from 2.0 to 2.8 GiB at 1024×768), so a run turns
it on only where three times its planned memory is free
(:attr:`deepprior.engine.MemoryPlan.roomy`).
Elsewhere (macOS, Windows, other C libraries) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

# mallopt's parameters (malloc.h) and glibc's defaults for them.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
KEEP_BYTES = 256 * 2**20  # freed memory kept at the heap's top before it is handed back


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library where it is glibc (which has ``mallopt`` and ``malloc_trim``), else None."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL("libc.so.6")
    except (AttributeError, ValueError, OSError):  # no confstr, no such name, no such library
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def available() -> bool:
    """True where :func:`keep_freed_memory` can change the allocator (glibc)."""
    return _glibc() is not None


_keeping = False  # mallopt's settings are the process's, so this state is the module's


def keep_freed_memory(wanted: bool) -> bool:
    """Take large blocks from the heap and keep freed memory for reuse (``wanted``), or return
    to glibc's defaults and hand what was kept back to the kernel; returns whether memory is
    now kept (never where the C library is not glibc)."""
    global _keeping
    libc = _glibc()
    if libc is None or wanted == _keeping:
        return _keeping
    if wanted:
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)
    else:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
    _keeping = wanted
    return _keeping


def keeping_freed_memory() -> bool:
    """Whether freed memory is kept for reuse now."""
    return _keeping


def hands_memory_back(function: Callable[P, R]) -> Callable[P, R]:
    """``function``, after which freed memory is no longer kept (and what was kept goes back
    to the kernel), however it ends: a fit inside it may have turned keeping on."""

    @functools.wraps(function)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        finally:
            keep_freed_memory(False)

    return wrapped
