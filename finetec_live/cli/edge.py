"""Edge mode (``finetec-live ... --serve ENDPOINT``): capture, pose, people and windows
here, the model in a ``finetec-serve`` elsewhere.

The windows go out as window messages (:mod:`finetec_live.wire.windows`) on a PUSH
socket connected to the server's ``--listen`` endpoint; the server publishes the
labels. Nothing here imports torch: the layout, window and hop are the options'
(``--window``, ``--hop``; by default the shipped Penn model's), so they must match the
server's model. A window ZeroMQ cannot queue (the server gone or far behind, past
the high-water mark) is dropped and counted, never waited for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import zmq

from finetec_live.errors import FinetecError
from finetec_live.wire.endpoints import parse_endpoint
from finetec_live.wire.windows import pack_window

log = logging.getLogger(__name__)

#: What an edge producer assumes of the server's model (the shipped Penn model's).
EDGE_LAYOUT, EDGE_WINDOW_S, EDGE_HOP_S = "penn13", 2.5, 0.5
#: Windows ZeroMQ queues for a server that is slow or away; beyond this they are dropped.
SEND_HWM = 1000


@dataclass
class EdgeModel:
    """Stands in for the recognizer where only its layout and window are needed."""

    layout: str = EDGE_LAYOUT
    window_seconds: float = EDGE_WINDOW_S
    hop_seconds: float = EDGE_HOP_S
    model_id: str = "finetec-serve"


class EdgeSender:
    """Takes the windows of one hop (as the hand-off does) and PUSHes them, never
    blocking; ``sent`` and ``dropped`` count them."""

    def __init__(self, endpoint: str, stream: str, context: zmq.Context | None = None) -> None:
        ep = parse_endpoint(endpoint, "--serve")
        if not ep.loopback:
            log.warning("--serve %s leaves this machine: window messages travel unencrypted",
                        ep.text)
        self.endpoint, self.stream = ep.text, stream
        self.socket = (context or zmq.Context.instance()).socket(zmq.PUSH)
        self.socket.setsockopt(zmq.SNDHWM, SEND_HWM)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.setsockopt(zmq.SNDTIMEO, 2000)  # a forced (last) window waits at most 2 s
        if ep.ipv6:
            self.socket.setsockopt(zmq.IPV6, 1)
        try:
            self.socket.connect(ep.text)
        except zmq.ZMQError as exc:
            self.socket.close(0)
            raise FinetecError(f"cannot connect --serve {ep.text} ({exc}); pass the "
                               "--listen endpoint of a finetec-serve") from None
        self.sent = self.dropped = 0
        self.closed = False

    def put(self, windows, force: bool = False) -> bool:
        for w in windows if isinstance(windows, list) else [windows]:
            try:
                self.socket.send(pack_window(w, self.stream), flags=0 if force else zmq.NOBLOCK)
                self.sent += 1
            except zmq.Again:
                self.dropped += 1
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.socket.close()

    def __len__(self) -> int:
        return 0
