"""Drawing for people: the skeleton, the label, its score and the frame rate.

Imported only when ``--show`` or ``--output`` is used. Observed joints are
drawn as filled dots with solid bones (green for one person; with several, each
track in its own colour, with its id and label above its head); joints filled in by
completion as hollow orange rings with thin bones, so a viewer sees what the model
invented.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.skeleton.layouts import get_layout

log = logging.getLogger(__name__)

COMPLETION_DISPLAY_S = 0.25  # how long a window's completed pose may stand in for a frame
OBSERVED = (60, 220, 60)  # BGR
COMPLETED = (0, 165, 255)
TEXT = (255, 255, 255)
#: Track colours (BGR), by id; completion keeps its orange.
PALETTE = ((60, 220, 60), (255, 120, 40), (200, 60, 230), (40, 220, 230), (230, 230, 60),
           (120, 120, 255), (255, 60, 160), (160, 255, 160))


def person_colour(person: int) -> tuple[int, int, int]:
    return PALETTE[person % len(PALETTE)]


def _pt(p: np.ndarray) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def draw_skeleton(image: np.ndarray, positions: np.ndarray, joint_valid: np.ndarray,
                  layout: str, completed: np.ndarray | None = None,
                  colour: tuple[int, int, int] = OBSERVED) -> np.ndarray:
    """Draw in place; ``completed`` (V, 2) supplies the joints that are not valid."""
    lay = get_layout(layout)
    scale = max(1, round(max(image.shape[:2]) / 400))
    pts = positions.copy()
    filled = joint_valid.copy()
    if completed is not None:
        use = ~joint_valid & np.isfinite(completed).all(1)
        pts[use] = completed[use]
        filled = joint_valid | use
    for a, b in lay.edges:
        if filled[a] and filled[b]:
            observed = joint_valid[a] and joint_valid[b]
            cv2.line(image, _pt(pts[a]), _pt(pts[b]), colour if observed else COMPLETED,
                     2 * scale if observed else scale, cv2.LINE_AA)
    for k in range(lay.num_joints):
        if joint_valid[k]:
            cv2.circle(image, _pt(pts[k]), 3 * scale, colour, -1, cv2.LINE_AA)
        elif filled[k]:
            cv2.circle(image, _pt(pts[k]), 4 * scale, COMPLETED, scale, cv2.LINE_AA)
    return image


def draw_caption(image: np.ndarray, lines: list[str]) -> np.ndarray:
    scale = max(0.5, max(image.shape[:2]) / 900)
    th = max(1, round(scale * 2))
    y = int(28 * scale)
    for line in lines:
        cv2.putText(image, line, (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), th + 2,
                    cv2.LINE_AA)
        cv2.putText(image, line, (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT, th, cv2.LINE_AA)
        y += int(30 * scale)
    return image


def draw_tag(image: np.ndarray, points: np.ndarray, text: str,
             colour: tuple[int, int, int]) -> np.ndarray:
    """``text`` just above the box of ``points`` (a person's valid joints), in place."""
    if len(points) == 0:
        return image
    scale = max(0.45, max(image.shape[:2]) / 1200)
    th = max(1, round(scale * 2))
    x, y = int(points[:, 0].min()), int(points[:, 1].min()) - int(10 * scale)
    y = max(int(20 * scale), y)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), th + 2,
                cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, th, cv2.LINE_AA)
    return image


class Display:
    """A window (``show``) and/or a video file (``output``) of annotated frames."""

    def __init__(self, show: bool, output: str | os.PathLike | None, fps: float,
                 title: str = "finetec-live") -> None:
        self.show, self.title, self.fps = show, title, fps
        self.output = Path(output) if output else None
        self.writer: cv2.VideoWriter | None = None
        self.closed_by_user = False
        if show and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise FinetecError("--show needs a graphical display (DISPLAY is not set); use "
                               "--output FILE to write the annotated video, or --no-display")
        if self.output is not None and not self.output.parent.is_dir():
            raise FinetecError(f"--output folder {self.output.parent} does not exist; create it "
                               "or choose another path")
        self.written = 0  # frames written to the output video

    def draw_tick(self, image: np.ndarray | None, width: int, height: int,
                  poses: dict, latest: dict, source_time: float, fps: float,
                  several: bool = False) -> None:
        """Show and/or write one tick: each person's skeleton and newest label; a written
        video gets the source time, the window on screen the processing speed.

        ``poses`` maps the people seen on this tick to their poses, ``latest`` each
        person to their newest classified window (with ``message`` and
        ``completed_positions``). A completed pose stands in for the tick's missing
        joints only while it is recent (windows describe the past). With ``several``
        people allowed, each track has its colour and its label above its head.
        """
        canvas = self.render(image, width, height, None, None, [])
        caption = []
        for person, pose in sorted(poses.items()):
            done = latest.get(person)
            completed = None
            if done is not None:
                m = done.message
                recent = pose.timestamp - m.t_end / 1e9 <= COMPLETION_DISPLAY_S
                if (done.completed_positions is not None and recent
                        and not pose.joint_valid.all()):
                    completed = done.completed_positions[-1]
            colour = person_colour(person) if several else OBSERVED
            draw_skeleton(canvas, pose.positions, pose.joint_valid, pose.layout, completed,
                          colour)
            if several:
                text = f"{person}: {done.message.label} {done.message.score:.2f}" \
                    if done is not None else f"{person}"
                draw_tag(canvas, pose.positions[pose.joint_valid], text, colour)
        if not several and latest.get(0) is not None:
            m = latest[0].message
            caption.append(f"{m.label}  {m.score:.2f}  (missing {m.missing:.0%})")
        elif several:
            caption.append(f"{len(poses)} in view")
        if self.output is not None:
            self.write(draw_caption(canvas.copy() if self.show else canvas,
                                    [*caption, f"t {source_time:7.2f} s"]))
        if self.show:
            self.show_frame(draw_caption(canvas, [*caption, f"{fps:.1f} fps"]))

    def render(self, image: np.ndarray | None, width: int, height: int, pose, completed,
               caption: list[str]) -> np.ndarray:
        canvas = image.copy() if image is not None else np.zeros((height or 480, width or 640,
                                                                  3), np.uint8)
        if pose is not None:
            draw_skeleton(canvas, pose.positions, pose.joint_valid, pose.layout, completed)
        return draw_caption(canvas, caption)

    def write(self, canvas: np.ndarray) -> None:
        """Append one frame to the output video (opened at the first frame)."""
        if self.writer is None:
            h, w = canvas.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.output.suffix.lower() in
                                              (".mp4", ".m4v", ".mov") else "MJPG"))
            self.writer = cv2.VideoWriter(str(self.output), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise FinetecError(f"cannot write video {self.output}; use a .mp4 or .avi "
                                   "file name in a writable folder")
        self.writer.write(canvas)
        self.written += 1

    def show_frame(self, canvas: np.ndarray) -> None:
        """Show one frame in the window; Esc or q closes it."""
        try:
            cv2.imshow(self.title, canvas)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as exc:
            raise FinetecError(f"cannot open a window ({exc.msg.strip()}); use --output "
                               "FILE or --no-display") from None
        if key in (27, ord("q")):
            self.closed_by_user = True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        if self.show:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass
