"""Former home of the data-set readers, kept only until every import names
:mod:`finetec_live.data` (``from finetec_live.data import load_penn_action``)."""

from finetec_live.data import *  # noqa: F403
from finetec_live.data import __all__  # noqa: F401
