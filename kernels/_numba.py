"""The one place that sets Numba's options for every kernel.

``jit`` compiles a serial kernel, ``ijit`` a small helper inlined into its
callers, ``pjit`` a parallel kernel (``prange`` over windows). All cache their
machine code on disk (``cache=True``) so a fresh process starts in well under a
second once the cache is warm.

Fast-math: we allow reassociation, contraction (FMA), reciprocal
approximations and ignoring the sign of zero, but *not* ``nnan``/``ninf``: the
kernels test values with ``np.isfinite`` to turn bad input into flags, and
those tests must not be optimised away.
"""

from __future__ import annotations

import numba

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

jit = numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
# small helpers called in hot loops: inlined into their callers at Numba IR level,
# which saves the call (arrays are passed as exploded structs) and lets LLVM optimise
# across the boundary
ijit = numba.njit(cache=True, fastmath=FASTMATH, nogil=True, inline="always")
pjit = numba.njit(cache=True, fastmath=FASTMATH, nogil=True, parallel=True)
# kernels that must give their NumPy twin's numbers bit for bit (no reassociation,
# contraction or reciprocal approximations): only the sign of zero is free
EXACT = {"nsz"}
jit_exact = numba.njit(cache=True, fastmath=EXACT, nogil=True)
ijit_exact = numba.njit(cache=True, fastmath=EXACT, nogil=True, inline="always")
pjit_exact = numba.njit(cache=True, fastmath=EXACT, nogil=True, parallel=True)
prange = numba.prange

__all__ = ["EXACT", "FASTMATH", "ijit", "ijit_exact", "jit", "jit_exact", "pjit", "pjit_exact",
           "prange"]
