"""The network as ONNX: export a checkpoint's network, run it with onnxruntime.

What is exported is :class:`~finetec_live.models.FinetecNet`'s forward pass only:
its inputs are :meth:`PreparedBatch.network_inputs` (the NumPy preparation and
the Numba kernels' outputs, which stay in this package), its outputs the class
logits, the pooled features (the open set's prototype similarity reads them) and,
for a model with completion, the completed window. The batch axis is dynamic; the
window length ``T`` and the joints ``V`` are the checkpoint's.

:class:`OnnxNetwork` runs such a file on onnxruntime's CPU (or CUDA, where the
installed onnxruntime has it) and returns what ``FinetecNet`` returns, as torch
tensors sharing onnxruntime's arrays, so the :class:`Recognizer` above it is the
same code for both backends. :func:`max_differences` compares the two on the
same batch; a file that does not reproduce its checkpoint is refused.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError

log = logging.getLogger(__name__)

INPUTS = ("x", "mask", "interp", "dynamic", "kin")
OUTPUTS = ("logits", "features", "completed")  # those the model gives, in this order
OPSET = 17
#: Largest difference to PyTorch, on any output, that a file may show and still be used.
TOLERANCE = 1e-4


def _present(out: dict) -> tuple[str, ...]:
    """The names of :data:`OUTPUTS` a forward pass's ``out`` holds, in order."""
    import torch

    return tuple(k for k in OUTPUTS if isinstance(out.get(k), torch.Tensor))


def synthetic_batch(recognizer, n: int = 1):
    """A :class:`PreparedBatch` of ``n`` synthetic windows of ``recognizer``'s layout."""
    from finetec_live.inference.window import synthetic_window

    w = synthetic_window(recognizer.layout, recognizer.T, 30.0)
    return recognizer.prepare(*(np.repeat(a[None], n, axis=0) for a in (
        w.positions, w.frame_valid, w.joint_valid, w.timestamps)))


def export_onnx(recognizer, path: str | os.PathLike, batch=None) -> tuple[str, ...]:
    """Write ``recognizer``'s network to ``path`` (ONNX, opset 17, dynamic batch).

    ``batch`` (a :class:`PreparedBatch`) is the example the export traces; by default
    a synthetic window. Returns the output names. The file is written whole or not at
    all (a temporary file, renamed)."""
    import torch

    batch = synthetic_batch(recognizer) if batch is None else batch
    model = recognizer.model
    inputs = tuple(torch.from_numpy(np.ascontiguousarray(a)).to(recognizer.device)
                   for a in batch.network_inputs())
    with torch.inference_mode():
        names = _present(model(*inputs))

    class _Outputs(torch.nn.Module):  # a tuple in a fixed order, what ONNX can name
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, *xs):
            out = self.net(*xs)
            return tuple(out[k] for k in names)

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # the tracer notes that T and the bank size become constants: they are
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # the TorchScript exporter: torch.export's needs onnxscript, and this network
            # traces whole (no data-dependent control flow)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(_Outputs().eval(), inputs, str(tmp), dynamo=False,
                              input_names=list(INPUTS), output_names=list(names),
                              dynamic_axes={k: {0: "batch"} for k in (*INPUTS, *names)},
                              opset_version=OPSET, do_constant_folding=True)
        os.replace(tmp, path)
    except OSError as exc:
        raise FinetecError(f"cannot write {path} ({exc.strerror or exc}); pass a path in a "
                           "writable folder") from None
    finally:
        tmp.unlink(missing_ok=True)
    return names


class OnnxNetwork:
    """An exported network on onnxruntime: ``net(x, mask, interp, dynamic, kin)`` ->
    ``{"logits": (N, K), "features": (N, C)[, "completed": (N, T, V, 2)]}`` (torch
    tensors over onnxruntime's arrays)."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu",
                 threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise FinetecError(f"onnxruntime cannot be imported ({exc}); install it "
                               "(`pip install onnxruntime`) or use --backend torch") from None
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise FinetecError("this onnxruntime has no CUDA provider; install "
                                   "onnxruntime-gpu, or use --device cpu or --backend torch")
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        # no busy-waiting between runs: on a few cores it takes the time of the threads
        # that receive and publish (128 streams: p95 64-98 ms without, 192-221 ms with)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # warnings about unused initialisers are not the user's
        self.path = Path(path)
        if not self.path.is_file():
            raise FinetecError(f"{self.path} not found; pass the file finetec-export wrote "
                               "(--onnx), or leave --onnx out to export into the cache")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own classes for a bad file
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FinetecError(f"{self.path} is not a network onnxruntime can run ({first}); "
                               "export it again with finetec-export") from None
        got = tuple(i.name for i in self.session.get_inputs())
        if got != INPUTS:
            raise FinetecError(f"{self.path} takes inputs {list(got)}, not {list(INPUTS)}; "
                               "export it with finetec-export")
        self.outputs = tuple(o.name for o in self.session.get_outputs())
        self.device = device

    def __call__(self, *inputs: np.ndarray) -> dict:
        import torch

        feed = {k: np.ascontiguousarray(v, dtype=np.float32)
                for k, v in zip(INPUTS, inputs, strict=True)}
        arrays = self.session.run(list(self.outputs), feed)
        return {k: torch.from_numpy(a) for k, a in zip(self.outputs, arrays, strict=True)}


def max_differences(recognizer, network: OnnxNetwork, batch) -> dict[str, float]:
    """Largest absolute difference, per output, between ``network`` and ``recognizer``'s
    torch model on ``batch``."""
    import torch

    inputs = [torch.from_numpy(np.ascontiguousarray(a)).to(recognizer.device)
              for a in batch.network_inputs()]
    with torch.inference_mode():
        ref = recognizer.model(*inputs)
    got = network(*batch.network_inputs())
    missing = [k for k in _present(ref) if k not in got]
    if missing:
        raise FinetecError(f"{network.path} lacks the outputs {missing} of its checkpoint; "
                           "export it again with finetec-export")
    return {k: float((got[k].float() - ref[k].float().cpu()).abs().max()) for k in got
            if k in ref}


def check_against(recognizer, network: OnnxNetwork, batch=None) -> dict[str, float]:
    """:func:`max_differences` on ``batch`` (default: a synthetic window), or a
    :class:`FinetecError` when any exceeds :data:`TOLERANCE`: the file is not this
    checkpoint's network."""
    batch = synthetic_batch(recognizer, 2) if batch is None else batch
    try:
        diffs = max_differences(recognizer, network, batch)
    except FinetecError:
        raise
    except Exception as exc:  # shapes of another checkpoint: onnxruntime refuses the feed
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FinetecError(f"{network.path} does not run on {recognizer.model_id}'s windows "
                           f"({first[:160]}); export this checkpoint with finetec-export"
                           ) from None
    worst = max(diffs.values())
    if not worst <= TOLERANCE:
        raise FinetecError(f"{network.path} differs from {recognizer.model_id} by {worst:.3g} "
                           f"(more than {TOLERANCE:g}): it is another checkpoint's network; "
                           "export this one with finetec-export")
    return diffs
