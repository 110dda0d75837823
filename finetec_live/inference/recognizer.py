"""The inference API: load a checkpoint, prepare windows, classify and complete them.

```
rec = Recognizer.from_checkpoint()          # shipped Penn Action weights
probs = rec.classify(positions, frame_valid)  # (N, K) numpy
```

Windows go through :func:`finetec_live.inference.prepare.prepare_windows` (the one
preprocessing path of live inference, evaluation and training), then the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.inference.prepare import PreparedBatch, check_windows, prepare_windows
from finetec_live.inference.preprocess import denormalize
from finetec_live.skeleton.layouts import get_layout

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "finetec-live/1"
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "models" / "weights"
NAMED_WEIGHTS = {"penn": "penn.pt", "jhmdb": "jhmdb.pt"}
MAX_CUDA_GRAPHS = 8  # captured input shapes kept per recognizer


def _weights_dir() -> Path:
    # installed package: finetec_live/models/weights; editable: <repo>/models/weights
    try:
        import finetec_live.models as m

        return Path(m.__file__).resolve().parent / "weights"
    except ImportError:  # pragma: no cover
        return WEIGHTS_DIR


def _hash_state(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def resolve_checkpoint(path: str | os.PathLike | None) -> Path:
    """``None``/``"penn"`` -> shipped Penn weights, ``"jhmdb"`` -> J-HMDB, else a file path."""
    if path is None:
        path = "penn"
    if isinstance(path, str) and path in NAMED_WEIGHTS:
        return _weights_dir() / NAMED_WEIGHTS[path]
    return Path(path)


def load_checkpoint(path: str | os.PathLike | None) -> dict:
    """Read a checkpoint with ``weights_only=True``; one-line :class:`FinetecError` on failure."""
    import torch

    p = resolve_checkpoint(path)
    if not p.is_file():
        raise FinetecError(f"model checkpoint {p} not found; pass a .pt file written by "
                           "tools/train.py or one of: " + ", ".join(NAMED_WEIGHTS))
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, or not a torch file
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FinetecError(f"cannot read model checkpoint {p} ({msg[:120]}); re-download it or "
                           "retrain with tools/train.py") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise FinetecError(f"{p} is not a finetec-live checkpoint (format "
                           f"{CHECKPOINT_FORMAT!r} expected); retrain with tools/train.py")
    for key in ("state_dict", "config", "layout", "class_names"):
        if key not in ckpt:
            raise FinetecError(f"checkpoint {p} lacks {key!r}; retrain with tools/train.py")
    return ckpt


class Recognizer:
    """A trained model: ``prepare``, ``predict``, ``classify``, ``complete``."""

    def __init__(self, model, config, layout: str, class_names: list[str], *,
                 device: str = "cpu", window_seconds: float = 2.5, hop_seconds: float = 0.5,
                 model_id: str = "finetec", checkpoint: dict | None = None,
                 precision: str = "fp32", cuda_graphs: bool = False) -> None:
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

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, device: str = "auto",
                        layout: str | None = None, precision: str = "fp32",
                        cuda_graphs: bool | None = None) -> Recognizer:
        """Load ``path`` (``None``/"penn", "jhmdb" or a file). ``layout``, if given, must match.

        On CUDA, ``precision="bf16"`` runs the network under bf16 autocast, and
        ``cuda_graphs`` (default: on for CUDA) captures one CUDA graph per input
        shape, so a fixed-shape live window (batch 1) replays without per-layer
        launch overhead; a capture that fails falls back to eager execution. On
        the CPU both are ignored (fp32, eager).
        """
        import torch

        if precision not in ("fp32", "bf16"):
            raise FinetecError(f"precision must be 'fp32' or 'bf16', got {precision!r}")

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
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise FinetecError(f"checkpoint {p} does not fit this version of the model "
                               f"({first}); retrain with tools/train.py") from None
        if cfg.layout != ck_layout or len(ckpt["class_names"]) != cfg.num_classes:
            raise FinetecError(f"checkpoint {p} is inconsistent (layout {ck_layout} vs "
                               f"{cfg.layout}, {len(ckpt['class_names'])} class names vs "
                               f"{cfg.num_classes} outputs); retrain with tools/train.py")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise FinetecError("device 'cuda' asked for but no CUDA device is available; "
                               "use device='auto' or 'cpu'")
        elif device not in ("cpu", "cuda"):
            raise FinetecError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        model.to(device).eval()
        dataset = str(ckpt.get("dataset", p.stem))
        model_id = f"{dataset}-{cfg.method}-{_hash_state(ckpt['state_dict'])[:8]}"
        return cls(model, cfg, ck_layout, [str(c) for c in ckpt["class_names"]], device=device,
                   window_seconds=float(ckpt.get("window_seconds", 2.5)),
                   hop_seconds=float(ckpt.get("hop_seconds", 0.5)), model_id=model_id,
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

    def _autocast(self):
        import torch

        if self.device == "cuda" and self.precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, batch: PreparedBatch):
        import torch

        inputs = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device, non_blocking=True)
                  for a in batch.network_inputs()]
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

    def predict(self, batch: PreparedBatch) -> np.ndarray:
        """Class probabilities ``(N, K)`` float32."""
        import torch

        out = self._forward(batch)
        return torch.softmax(out["logits"].float(), dim=-1).cpu().numpy().astype(np.float32)

    def classify(self, positions, frame_valid, joint_valid=None, timestamps=None) -> np.ndarray:
        """``predict(prepare(...))``: class probabilities ``(N, K)``."""
        return self.predict(self.prepare(positions, frame_valid, joint_valid, timestamps))

    def complete(self, positions, frame_valid, joint_valid=None, timestamps=None) -> np.ndarray:
        """Completed positions ``(N, T, V, 2)`` at the caller's frames and in the caller's units.

        Observed joints are returned unchanged; missing ones come from the
        model's completion (or, for the baselines, their filled input),
        interpolated in time from the model's grid to the caller's timestamps.
        """
        single = np.asarray(positions).ndim == 3
        pos, fv, jv, ts = check_windows(positions, frame_valid, joint_valid, timestamps,
                                    get_layout(self.layout).num_joints, self.layout)
        batch = self.prepare(pos, fv, jv, ts)
        out = self._forward(batch)["completed"].float().cpu().numpy()  # (N, T_m, V, 2)
        comp = denormalize(out, batch.centre, batch.scale)
        N, T_in = pos.shape[:2]
        result = np.empty_like(pos)
        for n in range(N):
            grid = batch.timestamps[n]
            src = comp[n].reshape(comp.shape[1], -1)  # (T_m, V*2)
            if grid[-1] > grid[0]:
                cols = [np.interp(ts[n], grid, src[:, k]) for k in range(src.shape[1])]
                res = np.stack(cols, axis=-1)
            else:
                res = np.repeat(src[:1], T_in, axis=0)
            result[n] = res.reshape(T_in, *comp.shape[2:])
        observed = (fv[..., None] & jv & np.isfinite(pos).all(-1))[..., None]
        result = np.where(observed, pos, result).astype(np.float32)
        return result[0] if single else result
