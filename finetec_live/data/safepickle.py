"""Loading pickles that may hold numpy arrays and plain containers, and nothing else.

:class:`RestrictedUnpickler` resolves only the globals numpy arrays and scalars
need, so a malicious file cannot execute code; :func:`safe_load_pickle` wraps it
with one-line errors naming the file.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError


def _numpy_globals() -> dict[tuple[str, str], object]:
    # Take the callables from numpy's own reduce output, so the table holds the
    # objects this numpy version really uses, under both spellings (numpy < 2
    # pickles name numpy.core, numpy >= 2 pickles name numpy._core).
    reconstruct = np.zeros(1).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray,
                                             ("numpy", "dtype"): np.dtype}
    frombuffer = None
    try:
        buf = np.zeros(1).__reduce_ex__(5)
        if getattr(buf[0], "__name__", "") == "_frombuffer":
            frombuffer = buf[0]
    except Exception:  # pragma: no cover - older numpy without protocol-5 support
        frombuffer = None
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        if frombuffer is not None:
            allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for array bytes (latin-1 only)."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED_GLOBALS = _numpy_globals()
# Protocol-2 pickles (mmcv's default, so most PYSKL files) store array bytes as
# _codecs.encode(str, "latin1").
_ALLOWED_GLOBALS[("_codecs", "encode")] = _latin1_encode
# ... and an empty byte string as bytes() (spelt __builtin__ by protocol 2).
_ALLOWED_GLOBALS[("builtins", "bytes")] = bytes
_ALLOWED_GLOBALS[("__builtin__", "bytes")] = bytes


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays, numpy scalars and plain containers only.

    ``find_class`` resolves ``numpy.ndarray``, ``numpy.dtype``, the array
    reconstructor, the scalar reconstructor and the protocol-5 buffer
    reconstructor (under their ``numpy.core`` and ``numpy._core`` names), plus
    a latin-1-only ``_codecs.encode`` and ``bytes`` that protocol-2 pickles
    use for raw bytes, and raises :class:`pickle.UnpicklingError` for any other
    global, before anything is called. Lists, dicts, tuples, strings and numbers need no globals.
    """

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays are allowed"
            ) from None


def safe_load_pickle(path: str | os.PathLike) -> object:
    """Load a pickle file that may hold only numpy arrays and plain containers.

    Raises :class:`FinetecError` naming the file when it is missing, unreadable,
    not a pickle or asks for anything beyond numpy arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise FinetecError(f"{path} not found; check the path or set FINETEC_DATA to the "
                           "data folder")
    try:
        data = path.read_bytes()
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise FinetecError(f"{path}: {exc}; use a pickle that holds only numpy arrays, "
                           "lists, dicts, strings and numbers") from None
    except Exception as exc:
        raise FinetecError(f"{path} is not a readable pickle ({type(exc).__name__}: {exc}); "
                           "replace it with an intact copy") from None
