"""finetec-live: real-time skeleton action recognition robust to missing frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Recognizer", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from finetec_live.inference.recognizer import Recognizer


def __getattr__(name: str):
    # The recognizer pulls in torch; import it only when asked for.
    if name == "Recognizer":
        from finetec_live.inference.recognizer import Recognizer

        return Recognizer
    raise AttributeError(f"module 'finetec_live' has no attribute {name!r}")
