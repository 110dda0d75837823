"""A check the wire tests share: what the decoder accepts is clean."""

from __future__ import annotations

import json

from finetec_live.wire.messages import MalformedMessage
from finetec_live.wire.subscriber import decode_message


def decodes_or_refuses(frames) -> object | None:
    """The decoded message, or None after a MalformedMessage; anything else fails."""
    try:
        got = decode_message(frames)
    except MalformedMessage:
        return None
    # what is accepted is clean: it re-encodes, round-trips and is strict JSON
    again = decode_message([got.topic.encode(), got.message.pack()])
    assert again.message == got.message
    json.dumps(got.message.to_dict(), allow_nan=False)
    return got
