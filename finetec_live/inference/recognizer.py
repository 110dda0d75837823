"""The inference API: load a checkpoint, prepare windows, classify and complete them.

```
rec = Recognizer.from_checkpoint()          # shipped Penn Action weights
probs = rec.classify(positions, frame_valid)  # (N, K) numpy
probs, done = rec.classify_and_complete(positions, frame_valid)  # one forward pass

batch = rec.prepare(positions, frame_valid)  # timed apart (the live worker)
probs, on_grid = rec.predict(batch, with_completion=True)
done = rec.to_caller_frames(on_grid, batch, positions, frame_valid)
```

Windows go through :func:`finetec_live.inference.prepare.prepare_windows` (the one
preprocessing path of live inference, evaluation and training), then the network.
"""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.inference.checkpoint import (
    CHECKPOINT_FORMAT,
    NAMED_WEIGHTS,
    bf16_is_native,
    hash_state,
    live_window,
    load_checkpoint,
    resolve_checkpoint,
    resolve_device,
    short_reason,
)
from finetec_live.inference.openset import Decision, OpenSet, decide
from finetec_live.inference.prepare import (
    MIN_FRAMES,
    PreparedBatch,
    check_windows,
    mirror_batch,
    prepare_groups,
    prepare_windows,
    region_scores,
)
from finetec_live.inference.preprocess import denormalize
from finetec_live.skeleton.layouts import get_layout

log = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_FORMAT", "MIN_FRAMES", "NAMED_WEIGHTS", "PRECISIONS", "Recognizer",
           "bf16_is_native", "load_checkpoint", "map_to_frames", "resolve_checkpoint"]

MAX_CUDA_GRAPHS = 8  # captured input shapes kept per recognizer
PRECISIONS = ("auto", "fp32", "bf16")  # Recognizer.from_checkpoint's precision


def map_to_frames(completed: np.ndarray, grid: np.ndarray, timestamps: np.ndarray,
                  positions: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Completed windows on the model's time grid -> the caller's frames.

    ``completed (N, T_m, V, 2)`` sits at ``grid (N, T_m)`` (seconds, the
    ``PreparedBatch.timestamps``); the result ``(N, T, V, 2)`` is linear in time
    from the grid to the caller's ``timestamps (N, T)`` (a grid of one instant
    is held), and ``positions`` wherever ``observed (N, T, V)`` is True.
    """
    completed = np.asarray(completed, np.float32)
    grid = np.asarray(grid, np.float64)
    ts = np.asarray(timestamps, np.float64)
    n, t_m = completed.shape[:2]
    t_in = ts.shape[1]
    tail = completed.shape[2:]
    if t_in == t_m and np.allclose(grid, ts, rtol=0, atol=1e-9):
        res = completed
    else:
        res = np.empty((n, t_in, *tail), dtype=np.float32)
        for k in range(n):
            src = completed[k].reshape(t_m, -1)  # (T_m, V*2)
            if grid[k, -1] > grid[k, 0]:
                cols = [np.interp(ts[k], grid[k], src[:, j]) for j in range(src.shape[1])]
                res[k] = np.stack(cols, axis=-1).reshape(t_in, *tail)
            else:
                res[k] = np.repeat(src[:1], t_in, axis=0).reshape(t_in, *tail)
    return np.where(np.asarray(observed, bool)[..., None], positions, res).astype(np.float32)


class Recognizer:
    """A trained model: ``prepare``, ``predict``, ``classify``, ``complete``,
    ``classify_and_complete``."""

    def __init__(self, model, config, layout: str, class_names: list[str], *,
                 device: str = "cpu", window_seconds: float = 2.5, hop_seconds: float = 0.5,
                 model_id: str = "finetec", checkpoint: dict | None = None,
                 precision: str = "fp32", cuda_graphs: bool = False) -> None:
        if precision not in PRECISIONS or precision == "auto":  # from_checkpoint resolves it
            raise FinetecError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.model = model
        self.precision = precision
        self.cuda_graphs = bool(cuda_graphs and device == "cuda")
        self._graphs: dict = {}  # input shapes -> (graph, static inputs, static outputs)
        self.config = config
        self.layout = layout
        self.class_names = list(class_names)
        self.device = device
        self.window_seconds = float(window_seconds)
        self.hop_seconds = float(hop_seconds)
        self.model_id = model_id
        self.checkpoint_meta = {k: v for k, v in (checkpoint or {}).items()
                                if k not in ("state_dict", "optimizer", "prior")}
        raw = (checkpoint or {}).get("open_set")
        # the calibrated unknown/idle decision (None: the checkpoint has none)
        self.open_set: OpenSet | None = None if raw is None else OpenSet.from_dict(raw)
        self.open_set_enabled = self.open_set is not None
        self.onnx = None  # an OnnxNetwork run instead of ``model`` (see use_onnx)
        # average each window's class probabilities with its mirror image's (left and
        # right swapped), in the same forward pass: twice the network's work
        self.mirror_average = False

    @property
    def backend(self) -> str:
        """What runs the network: ``"torch"`` or ``"onnxruntime"``."""
        return "torch" if self.onnx is None else "onnxruntime"

    @property
    def network_precision(self) -> str:
        """The arithmetic the network runs in: ``precision`` on torch, fp32 on onnxruntime."""
        return self.precision if self.onnx is None else "fp32"

    def use_onnx(self, path: str | os.PathLike | None = None,
                 threads: int | None = None) -> dict[str, float]:
        """Run the network on onnxruntime from now on: ``path`` (an export of this
        checkpoint), or by default this checkpoint's export in the cache, written on
        first use. The file is checked against the torch model first (a file of
        another checkpoint is refused); returns the largest difference per output."""
        from finetec_live.data.paths import cache_dir
        from finetec_live.inference.onnx_network import OnnxNetwork, check_against, export_onnx

        def swap_in(file) -> dict[str, float]:
            net = OnnxNetwork(file, self.device, threads)
            diffs = check_against(self, net)
            self.onnx = net
            return diffs

        if path is not None:
            return swap_in(path)
        path = cache_dir() / "onnx" / f"{self.model_id}.onnx"
        if path.is_file():  # made earlier, perhaps by another version of this code
            try:
                return swap_in(path)
            except FinetecError as exc:
                log.info("exporting %s again: the cached %s (%s)", self.model_id, path, exc)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FinetecError(f"cannot make {path.parent} ({exc.strerror}); set "
                               "FINETEC_CACHE to a writable folder or pass --onnx") from None
        export_onnx(self, path)
        log.info("exported %s to %s", self.model_id, path)
        return swap_in(path)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, device: str = "auto",
                        layout: str | None = None, precision: str = "fp32",
                        cuda_graphs: bool | None = None) -> Recognizer:
        """Load ``path`` (``None``/"penn", "jhmdb" or a file). ``layout``, if given, must match.

        ``precision="bf16"`` runs the torch network under bf16 autocast (CUDA or
        CPU; on a CPU with bf16 matrix units or instructions it is faster for batches
        of a few dozen windows, slower for one: :func:`bf16_is_native` says whether it
        has them; ``"auto"`` is bf16 there and fp32 elsewhere). ``cuda_graphs``
        (default: on for CUDA) captures one CUDA graph per input shape, so a
        fixed-shape live window (batch 1) replays without per-layer launch overhead;
        a capture that fails falls back to eager execution; on the CPU it is ignored.
        The onnxruntime backend (:meth:`use_onnx`) always runs in fp32.
        """

        if precision not in PRECISIONS:
            raise FinetecError(f"precision must be one of {', '.join(PRECISIONS)}, "
                               f"got {precision!r}")

        from finetec_live.models import FinetecNet, ModelConfig

        ckpt = load_checkpoint(path)
        p = resolve_checkpoint(path)
        ck_layout = str(ckpt["layout"])
        if layout is not None and get_layout(layout).name != ck_layout:
            raise FinetecError(f"checkpoint {p} is for layout {ck_layout}, not {layout}; use a "
                               f"model trained on {layout} or map the poses to {ck_layout}")
        try:
            cfg = ModelConfig.from_dict(dict(ckpt["config"]))
            model = FinetecNet(cfg)
            model.load_state_dict(ckpt["state_dict"], strict=True)
        except (TypeError, ValueError, RuntimeError, KeyError, FinetecError) as e:
            raise FinetecError(f"checkpoint {p} does not fit this version of the model "
                               f"({short_reason(e)}); retrain with tools/train.py") from None
        if cfg.layout != ck_layout or len(ckpt["class_names"]) != cfg.num_classes:
            raise FinetecError(f"checkpoint {p} is inconsistent (layout {ck_layout} vs "
                               f"{cfg.layout}, {len(ckpt['class_names'])} class names vs "
                               f"{cfg.num_classes} outputs); retrain with tools/train.py")
        window_s, hop_s = live_window(ckpt, p)
        device = resolve_device(device)
        if precision == "auto":
            precision = "bf16" if bf16_is_native(device) else "fp32"
        model.to(device).eval()
        dataset = str(ckpt.get("dataset", p.stem))
        model_id = f"{dataset}-{cfg.method}-{hash_state(ckpt['state_dict'])[:8]}"
        return cls(model, cfg, ck_layout, [str(c) for c in ckpt["class_names"]], device=device,
                   window_seconds=window_s, hop_seconds=hop_s, model_id=model_id,
                   checkpoint=ckpt, precision=precision,
                   cuda_graphs=device == "cuda" if cuda_graphs is None else cuda_graphs)

    # ------------------------------------------------------------------ properties
    @property
    def T(self) -> int:
        return int(self.config.T)

    @property
    def uses_completion(self) -> bool:
        return bool(self.config.method == "finetec" and self.config.completion)

    @property
    def method(self) -> str:
        return str(self.config.method)

    # ------------------------------------------------------------------ inference
    def prepare(self, positions, frame_valid, joint_valid=None, timestamps=None) -> PreparedBatch:
        """NumPy-only preprocessing of ``(N, T, V, 2)`` windows (see :func:`prepare_windows`)."""
        return prepare_windows(positions, frame_valid, joint_valid, timestamps, T=self.T,
                               layout=self.layout, fill=self.config.fill,
                               kernels=self.config.needs_kernels, interp=self.config.interp)

    def prepare_groups(self, groups) -> PreparedBatch:
        """:meth:`prepare` of several batches of windows, each of its own length, as one
        batch (see :func:`~finetec_live.inference.prepare.prepare_groups`)."""
        return prepare_groups(groups, T=self.T, layout=self.layout, fill=self.config.fill,
                              kernels=self.config.needs_kernels, interp=self.config.interp)

    def _autocast(self):
        import torch

        if self.precision == "bf16":
            return torch.autocast(self.device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, arrays: tuple[np.ndarray, ...]):
        import torch

        if self.onnx is not None:
            return self.onnx(*arrays)
        inputs = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device, non_blocking=True)
                  for a in arrays]
        if self.cuda_graphs:
            out = self._graph_forward(inputs)
            if out is not None:
                return out
        with torch.inference_mode(), self._autocast():
            return self.model(*inputs)

    def _graph_forward(self, inputs):
        """Replay (capturing on first use) the CUDA graph for these input shapes."""
        import torch

        key = tuple(tuple(x.shape) for x in inputs)
        entry = self._graphs.get(key)
        if entry is None and len(self._graphs) >= MAX_CUDA_GRAPHS:
            return None  # many shapes (an offline evaluation): eager is as good
        if entry is None:
            try:
                static = [x.clone() for x in inputs]
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side), torch.no_grad(), self._autocast():
                    for _ in range(3):  # let cuDNN/cuBLAS pick their kernels before capture
                        self.model(*static)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph), torch.no_grad(), self._autocast():
                    out = self.model(*static)
                outputs = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
                entry = (graph, static, outputs)
            except Exception as e:  # any capture failure means: run eagerly
                log.warning("CUDA graph capture failed (%s); running the model eagerly",
                            str(e).splitlines()[0] if str(e) else type(e).__name__)
                self.cuda_graphs = False
                return None
            self._graphs[key] = entry
        graph, static, outputs = entry
        for dst, src in zip(static, inputs, strict=True):
            dst.copy_(src)
        graph.replay()
        return {k: v.clone() for k, v in outputs.items()}

    def predict(self, batch: PreparedBatch, with_completion: bool = False):
        """Class probabilities ``(N, K)`` float32 of a prepared batch.

        With ``with_completion``, the same forward pass also gives the completed
        positions: returns ``(probs (N, K), completed (N, T_m, V, 2))``, the
        completion on the model's time grid (``batch.timestamps``) in the caller's
        units; :meth:`to_caller_frames` maps it to the caller's frames.
        """
        import torch

        arrays = batch.network_inputs()
        if self.mirror_average:  # the windows and their mirror images in one pass
            arrays = tuple(np.concatenate([a, m]) for a, m in
                           zip(arrays, mirror_batch(batch, self.layout).network_inputs(),
                               strict=True))
        out = self._forward(arrays)
        probs = torch.softmax(out["logits"].float(), dim=-1).cpu().numpy().astype(np.float32)
        features = out["features"].float().cpu().numpy() if "features" in out else None
        n = len(batch)
        if self.mirror_average:  # (2N, K) -> (N, K): the mean of each window and its mirror
            probs = (probs[:n] + probs[n:]) / 2
            features = None if features is None else (features[:n] + features[n:]) / 2
        if features is not None:  # for the open set's class-prototype similarity (decide)
            batch.features = features
        if not with_completion:
            return probs
        done = out["completed"][:n].float().cpu().numpy()  # (N, T_m, V, 2), normalised
        return probs, denormalize(done, batch.centre, batch.scale).astype(np.float32)

    def to_caller_frames(self, completed: np.ndarray, batch: PreparedBatch, positions,
                         frame_valid, joint_valid=None, timestamps=None) -> np.ndarray:
        """``completed (N, T_m, V, 2)`` from ``predict(batch, with_completion=True)`` at the
        frames of the windows ``batch`` was prepared from: ``(N, T, V, 2)``, observed joints
        unchanged (see :func:`map_to_frames`)."""
        pos, fv, jv, ts = check_windows(positions, frame_valid, joint_valid, timestamps,
                                        get_layout(self.layout).num_joints, self.layout)
        observed = fv[..., None] & jv & np.isfinite(pos).all(-1)
        return map_to_frames(completed, batch.timestamps, ts, pos, observed)

    # ------------------------------------------------------------------ open set
    def motion_scores(self, batch: PreparedBatch) -> np.ndarray:
        """The region motion kernel's scores ``(N, R)`` of a prepared batch (run now when
        the model's preprocessing did not run it)."""
        if batch.motion is not None:
            return batch.motion
        return region_scores(batch.x if self.config.fill == "zeros" else
                             np.where(batch.mask[..., None] > 0, batch.x, 0.0),
                             batch.mask > 0, get_layout(self.layout))[0]

    def decide(self, probs: np.ndarray, batch: PreparedBatch,
               features: np.ndarray | None = None, held: np.ndarray | None = None,
               rows: np.ndarray | None = None) -> list[Decision]:
        """Per window of ``batch``, a class, ``unknown`` or ``idle`` with its score
        (:func:`~finetec_live.inference.openset.decide`) from ``probs (N, K)`` and the
        network's ``features (N, C)`` (default: the batch's, kept by :meth:`predict`;
        a caller that smooths over windows passes its own, and its tracks' ``held``
        classes ``(N,)``, -1 for none); the top class alone when the checkpoint has no
        open-set calibration or ``open_set_enabled`` is False. ``rows``: decide only these
        rows of the batch (the decisions in that order)."""
        open_set = self.open_set if self.open_set_enabled else None
        if open_set is not None and batch.motion is None:
            batch.motion = self.motion_scores(batch)  # once, for every later call
        motion = (batch.motion if open_set is not None
                  else np.zeros((len(probs), 0), np.float32))
        features = batch.features if features is None else features
        if rows is not None:
            probs, motion = np.asarray(probs)[rows], motion[rows]
            features = None if features is None else np.asarray(features)[rows]
            held = None if held is None else np.asarray(held)[rows]
        return decide(probs, motion, self.class_names, open_set, features, held)

    def decisions(self, positions, frame_valid, joint_valid=None, timestamps=None
                  ) -> list[Decision]:
        """:meth:`decide` on windows ``(N, T, V, 2)`` (or one ``(T, V, 2)``)."""
        batch = self.prepare(positions, frame_valid, joint_valid, timestamps)
        return self.decide(self.predict(batch), batch)

    def label(self, positions, frame_valid, joint_valid=None, timestamps=None) -> list[str]:
        """Per window a class name, ``"unknown"`` (fits none of the classes) or ``"idle"``
        (every body region static)."""
        return [d.label for d in self.decisions(positions, frame_valid, joint_valid,
                                                timestamps)]

    def classify(self, positions, frame_valid, joint_valid=None, timestamps=None) -> np.ndarray:
        """``predict(prepare(...))``: class probabilities ``(N, K)``."""
        return self.predict(self.prepare(positions, frame_valid, joint_valid, timestamps))

    def classify_and_complete(self, positions, frame_valid, joint_valid=None, timestamps=None
                              ) -> tuple[np.ndarray, np.ndarray]:
        """``(classify(...), complete(...))`` from ONE forward pass of the network:
        ``probs (N, K)`` and the completed positions ``(N, T, V, 2)`` at the caller's frames
        in the caller's units (one window ``(T, V, 2)`` in gives ``(T, V, 2)`` back, as
        :meth:`complete` does)."""
        single = np.asarray(positions).ndim == 3
        pos, fv, jv, ts = check_windows(positions, frame_valid, joint_valid, timestamps,
                                        get_layout(self.layout).num_joints, self.layout)
        batch = self.prepare(pos, fv, jv, ts)
        probs, done = self.predict(batch, with_completion=True)
        result = self.to_caller_frames(done, batch, pos, fv, jv, ts)
        return probs, (result[0] if single else result)

    def complete(self, positions, frame_valid, joint_valid=None, timestamps=None) -> np.ndarray:
        """Completed positions ``(N, T, V, 2)`` at the caller's frames and in the caller's units.

        Observed joints are returned unchanged; missing ones come from the
        model's completion (or, for the baselines, their filled input),
        interpolated in time from the model's grid to the caller's timestamps.
        """
        return self.classify_and_complete(positions, frame_valid, joint_valid, timestamps)[1]
