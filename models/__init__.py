"""Networks and shipped weights (installed as ``finetec_live.models``)."""
