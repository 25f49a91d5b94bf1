"""``vgps-policy-server``: serve one policy, by name, over ``vgps-policy/1``.

Loads the policy's factory (``--policy NAME``, see :mod:`vgps_policy_server.policies`), adds its
options, builds it, listens, prints one line ``vgps-policy-server: serving NAME on
ws://HOST:PORT`` to stdout (flushed: scripts wait for it; with ``--port 0`` it holds the port
picked) and serves until SIGINT or SIGTERM (exit 0). Exit 2: unknown policy, bad option or a
policy that cannot be loaded or built (the message says why); exit 1: cannot listen.

Usage::

    vgps-policy-server --policy random --port 8000 --horizon 4
    vgps-policy-server --policy octo --help          # the policy's own options
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from vgps_policy_server.policies import PolicyLoadError, available, load
from vgps_policy_server.protocol import DEFAULT_MAX_MESSAGE_BYTES, PROTOCOL
from vgps_policy_server.server import PolicyServer

PROG = "vgps-policy-server"


def make_parser(policies: Sequence[str]) -> argparse.ArgumentParser:
    """The common options (a policy's own options are added by its factory)."""
    parser = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False,
        description=f"Serve one policy over the {PROTOCOL} protocol (docs/policy_protocol.md).",
        epilog=f"policies: {', '.join(policies)}; `--policy NAME --help` lists its options")
    parser.add_argument("--policy", required=True, help=f"one of: {', '.join(policies)}")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                                                            "(default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000,
                        help="TCP port (default 8000; 0 picks a free one)")
    parser.add_argument("--max-message-mib", type=float,
                        default=DEFAULT_MAX_MESSAGE_BYTES / 2**20,
                        help="largest request served, MiB (default %(default)g)")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="(default INFO)")
    return parser


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = list(available())
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    first.add_argument("--policy")
    chosen = first.parse_known_args(argv)[0].policy
    parser = make_parser(names)
    if chosen is not None:
        try:
            factory = load(chosen)
        except PolicyLoadError as exc:
            return _fail(str(exc), 2)
        factory.add_arguments(parser)
    args = parser.parse_args(argv)  # exits 2 on a bad option, 0 after --help
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    if not args.max_message_mib > 0:
        return _fail(f"--max-message-mib={args.max_message_mib}: must be > 0", 2)
    try:
        policy = factory.build(args)
    except ImportError as exc:
        return _fail(f"policy {chosen!r} needs a package that is not installed: {exc}", 2)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # any failure to build is reported, not traced
        logging.getLogger(PROG).debug("building the policy failed", exc_info=True)
        return _fail(f"cannot build policy {chosen!r}: {type(exc).__name__}: {exc}", 2)
    try:
        server = PolicyServer(policy, args.host, args.port,
                              max_message_bytes=int(args.max_message_mib * 2**20))
    except ValueError as exc:
        return _fail(f"policy {chosen!r} is not servable: {exc}", 2)
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc}", 1)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger(PROG).info("metadata: %s", server.metadata)
    server.start()
    print(f"{PROG}: serving {chosen} on {server.url}", flush=True)
    while not stop.wait(1.0):
        if not server.running:  # pragma: no cover - serve_forever failed (logged)
            server.stop()
            return _fail("the server stopped unexpectedly (see the log above)", 1)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
