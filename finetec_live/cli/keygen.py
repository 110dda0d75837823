"""``finetec-live keygen DIR``: CURVE key pairs for publishing beyond loopback."""

from __future__ import annotations

from pathlib import Path

from finetec_live.cli.options import build_keygen_parser


def keygen_main(argv: list[str]) -> int:
    from finetec_live.wire.keys import generate_keys

    args = build_keygen_parser().parse_args(argv)
    keys = generate_keys(args.dir, overwrite=args.force)
    d = Path(args.dir)
    print(f"wrote {', '.join(str(f) for pair in keys.values() for f in pair)}\n"
          f"publisher:  finetec-live ... --bind tcp://*:5557 --curve-secret "
          f"{d / 'server.key_secret'} --curve-clients DIR_WITH_client.key\n"
          f"subscriber: finetec-subscribe --connect tcp://HOST:5557 --curve-server-key "
          f"{d / 'server.key'} --curve-secret {d / 'client.key_secret'}")
    return 0
