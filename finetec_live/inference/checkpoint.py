"""Checkpoint files: names of the shipped weights, checked reading, identity and history.

A checkpoint is a ``torch.save`` dict of plain data (read with ``weights_only=True``):
``format``, ``state_dict``, ``config``, ``layout``, ``class_names`` and the metadata the
training tool writes, among it ``stages``, one record per training or refit run that
made the file (:func:`checkpoint_stages` also reads the older ``command`` /
``base_command`` keys).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from finetec_live.errors import FinetecError

CHECKPOINT_FORMAT = "finetec-live/1"
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "models" / "weights"
NAMED_WEIGHTS = {"penn": "penn.pt", "jhmdb": "jhmdb.pt"}
DEVICES = ("auto", "cpu", "cuda")


def weights_dir() -> Path:
    """Folder of the shipped weights (installed package or editable checkout)."""
    try:
        import finetec_live.models as m

        return Path(m.__file__).resolve().parent / "weights"
    except ImportError:  # pragma: no cover
        return WEIGHTS_DIR


def resolve_checkpoint(path: str | os.PathLike | None) -> Path:
    """``None``/``"penn"`` -> shipped Penn weights, ``"jhmdb"`` -> J-HMDB, else a file path."""
    if path is None:
        path = "penn"
    if isinstance(path, str) and path in NAMED_WEIGHTS:
        return weights_dir() / NAMED_WEIGHTS[path]
    return Path(path)


def shipped_name(path: str | os.PathLike | None) -> str | None:
    """``"models/weights/penn.pt"`` when ``path`` is a shipped weights file, else ``None``."""
    p = resolve_checkpoint(path).resolve()
    for name in NAMED_WEIGHTS.values():
        if p == (weights_dir() / name).resolve():
            return f"models/weights/{name}"
    return None


def short_reason(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, cut at a word boundary with an ellipsis
    when longer than ``limit`` characters (the type name when the message is empty)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    if len(line) <= limit:
        return line
    cut = line[: limit + 1].rsplit(" ", 1)[0] if " " in line[:limit] else line[:limit]
    return cut.rstrip(" ,;:") + "…"


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is available, else ``"cpu"``; ``"cuda"`` without
    one is a :class:`FinetecError` naming both the command-line flag and the argument."""
    import torch

    if device not in DEVICES:
        raise FinetecError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FinetecError("no CUDA device is available; use --device cpu (device='cpu') "
                           "or --device auto (device='auto')")
    return device


def bf16_is_native(device: str) -> bool:
    """Whether ``device`` ("cpu" or "cuda") should run the network in bf16 by default:
    True on a CPU with Intel AMX tiles (bf16 matrix units) or AVX-512 BF16 instructions,
    where autocast makes batches faster (``tools/bench_serve.py`` runs both precisions
    side by side; ``tools/bench_graphconv.py`` times the network alone); a GPU is left to
    the caller's choice (False)."""
    if device != "cpu":
        return False
    import torch

    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):  # torch >= 2.3
        probe = getattr(torch.cpu, name, None)  # private probes
        try:
            if probe is not None and bool(probe()):
                return True
        except Exception:  # a probe that fails says nothing: try the next, else fp32
            continue
    return False


def file_sha256(path: str | os.PathLike | None) -> str:
    """SHA-256 (hex) of a checkpoint file's bytes."""
    h = hashlib.sha256()
    with open(resolve_checkpoint(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_state(state: dict) -> str:
    """SHA-256 (hex) of a state dict's names and tensor bytes (independent of the file)."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


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
        raise FinetecError(f"cannot read model checkpoint {p} ({short_reason(e, 120)}); "
                           "re-download it or retrain with tools/train.py") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise FinetecError(f"{p} is not a finetec-live checkpoint (format "
                           f"{CHECKPOINT_FORMAT!r} expected); retrain with tools/train.py")
    for key in ("state_dict", "config", "layout", "class_names"):
        if key not in ckpt:
            raise FinetecError(f"checkpoint {p} lacks {key!r}; retrain with tools/train.py")
    return ckpt


def live_window(ckpt: dict, path) -> tuple[float, float]:
    """The checkpoint's recommended live ``(window_seconds, hop_seconds)``, checked: finite,
    a window of at most :data:`~finetec_live.inference.window.MAX_WINDOW_S`, a hop of at
    least :data:`~finetec_live.inference.window.MIN_HOP_S` and at most the window."""
    import math

    from finetec_live.inference.window import MAX_WINDOW_S, MIN_HOP_S

    try:
        window, hop = float(ckpt.get("window_seconds", 2.5)), float(ckpt.get("hop_seconds", 0.5))
    except (TypeError, ValueError):
        window = hop = math.nan
    if not (math.isfinite(window) and math.isfinite(hop) and 0 < window <= MAX_WINDOW_S
            and MIN_HOP_S <= hop <= window):
        raise FinetecError(f"checkpoint {path} recommends a live window of "
                           f"{ckpt.get('window_seconds')!r} s every {ckpt.get('hop_seconds')!r} "
                           f"s, outside (0, {MAX_WINDOW_S:g}] s with a hop of {MIN_HOP_S:g} s "
                           "to the window; retrain it with sane --window-seconds/--hop-seconds")
    return window, hop


def checkpoint_stages(ckpt: dict) -> list[dict]:
    """The runs that made a checkpoint, oldest first: its ``stages`` records, then any of
    the older ``base_command`` / ``command`` keys that no record holds yet (files written
    before every run appended its own record)."""
    stages = [dict(s) for s in ckpt.get("stages") or [] if isinstance(s, dict)]
    known = {_norm(s.get("command")) for s in stages}
    for key in ("base_command", "command"):
        cmd = ckpt.get(key)
        if isinstance(cmd, str) and cmd and _norm(cmd) not in known:
            stages.append({"command": cmd, "recorded": f"from the checkpoint's {key!r} key"})
            known.add(_norm(cmd))
    return stages


def _norm(cmd) -> str:
    """A command without a leading ``python`` (the first records omitted it)."""
    text = str(cmd or "").strip()
    return text[len("python "):] if text.startswith("python ") else text
