"""Learning: training, the completion refit, validation and evaluation.

- :mod:`~finetec_live.learning.windows`: training windows (the augmenting ``Sampler``,
  the completion target, the validation split, the centroid bank's windows).
- :mod:`~finetec_live.learning.options`: ``TrainOptions``, what a run is asked to do.
- :mod:`~finetec_live.learning.train`: joint training; :mod:`~finetec_live.learning.refit`:
  the completion refit; :mod:`~finetec_live.learning.refine`: completion-only epochs.
- :mod:`~finetec_live.learning.validation`: held-out training clips, scored like the test.
- :mod:`~finetec_live.learning.checkpoints`: atomic saves and the ``stages`` records.
- :mod:`~finetec_live.learning.protocol`: corrupted test windows and the metrics;
  :mod:`~finetec_live.learning.evaluate`: the evaluation driver;
  :mod:`~finetec_live.learning.reports`: tables, plot, merge.
"""
