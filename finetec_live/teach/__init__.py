"""Teaching the model your own actions: ``finetec-train``.

- :mod:`~finetec_live.teach.collect`: the user's clips (class folders of videos or pose
  recordings, poses estimated once and cached; or a PYSKL file), as penn13 clips.
- :mod:`~finetec_live.teach.others`: clips of other actions, for ``unknown``.
- :mod:`~finetec_live.teach.fit`: the student network (the base weights, a new
  classification layer) and its fine-tuning.
- :mod:`~finetec_live.teach.report`: the validation report next to the checkpoint.
- :mod:`~finetec_live.teach.run`: :func:`teach`, one run of all of it.
"""

from __future__ import annotations

from finetec_live.teach.fit import FitOptions
from finetec_live.teach.run import TeachOptions, teach

__all__ = ["FitOptions", "TeachOptions", "teach"]
