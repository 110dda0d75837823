"""Validation during training, on the clips held out of the training split.

The windows are those of the evaluation protocol
(:func:`finetec_live.learning.protocol.build_protocol`: whole clips resampled to the
model's ``T``, seeded masks), built once per run and scored with the evaluation's own
:func:`finetec_live.learning.evaluate.evaluate_method` through a :class:`Recognizer`
around the model being trained: validation and evaluation cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence

from finetec_live.learning.evaluate import evaluate_method
from finetec_live.learning.protocol import DEFAULT_SEED, ProtocolInputs, build_protocol

CLEAN = "clean"
BURST60 = "burst:0.6:3"


class Validator:
    """Scores a model on held-out clips under a few protocols (masks made once, on first use).

    ``clips`` the validation clips; ``class_names`` and ``layout`` those of the model.
    """

    def __init__(self, clips: Sequence, layout: str, class_names: Sequence[str],
                 seed: int = DEFAULT_SEED) -> None:
        self.clips = list(clips)
        self.layout = layout
        self.class_names = list(class_names)
        self.seed = seed
        self._inputs: dict[tuple[str, int], ProtocolInputs] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def inputs(self, spec: str, T: int) -> ProtocolInputs:
        key = (spec, T)
        if key not in self._inputs:
            self._inputs[key] = build_protocol(self.clips, spec, T, self.layout, self.seed)
        return self._inputs[key]

    def evaluate(self, model, device: str, specs: Sequence[str] = (CLEAN, BURST60)) -> dict:
        """``{spec: {"top1", "mean_class", "completion_error", "completion_ratio",
        "interpolation_error", "missing_joints"}}`` of ``model`` (a ``FinetecNet``; put
        back in the modes it was in)."""
        from finetec_live.inference.recognizer import Recognizer
        from finetec_live.learning.protocol import interpolation_error

        if not self.clips:
            return {}
        modes = [m.training for m in model.modules()]  # a refit trains one submodule
        rec = Recognizer(model.eval(), model.cfg, self.layout, self.class_names, device=device,
                         model_id="in-training")
        out = {}
        try:
            for spec in specs:
                inputs = self.inputs(spec, rec.T)
                res = evaluate_method(rec, inputs, len(self.class_names))
                base, count = interpolation_error(inputs, self.layout)
                res["interpolation_error"] = base if count else None
                ok = count and res["completion_error"] is not None
                res["completion_ratio"] = res["completion_error"] / base if ok else None
                out[spec] = res
        finally:
            for m, mode in zip(model.modules(), modes, strict=True):
                m.training = mode
        return out
