"""The one place that sets Numba's options for every kernel.

``jit`` compiles a serial kernel, ``pjit`` a parallel one (``prange`` over
windows). Both cache their machine code on disk (``cache=True``) so a fresh
process starts in well under a second once the cache is warm.

Fast-math: we allow reassociation, contraction (FMA), reciprocal
approximations and ignoring the sign of zero, but *not* ``nnan``/``ninf``: the
kernels test values with ``np.isfinite`` to turn bad input into flags, and
those tests must not be optimised away.
"""

from __future__ import annotations

import numba

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

jit = numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
pjit = numba.njit(cache=True, fastmath=FASTMATH, nogil=True, parallel=True)
prange = numba.prange

__all__ = ["FASTMATH", "jit", "pjit", "prange"]
