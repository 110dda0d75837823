"""Numba kernels over skeleton windows (installed as ``finetec_live.kernels``)."""
