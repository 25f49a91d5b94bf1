"""``vgps label``: label recorded episodes (success / failure / skip) on a local web page.

    vgps label out/bags/run1 out/bags/run2           # prints the URL, opens a browser if it can
    vgps label out/bags/run1 --port 8765 --no-open   # e.g. over `ssh -L 8765:127.0.0.1:8765`

The page (:mod:`vgps.flywheel.label_server`, served on 127.0.0.1 only) shows each episode's
frames, its value trace and the steering decisions; one click or key labels an episode. Labels go
to ``<bag>.labels.json`` beside each bag (:mod:`vgps.flywheel.labels`); bags are only read.
Restarting resumes at the first unlabelled episode. Ctrl-C stops the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import webbrowser
from pathlib import Path

LAZY_BYTES = 512 * 1024 * 1024  # bags larger than this in all read their frames on demand


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser(
        "label", help="label recorded episodes (success / failure / skip) on a local web page",
        description="Serve a labelling page on 127.0.0.1 for the episodes of `vgps up --record` "
                    "bags: frames, value trace and decisions per step; Success / Failure / "
                    "Skip and an optional 'went wrong here' step per episode. Labels are saved "
                    "in BAG.labels.json beside each bag; the bags are never modified.")
    lab.add_argument("bags", type=Path, nargs="+", metavar="BAG", help="bag directories")
    lab.add_argument("--port", type=int, default=0, metavar="P",
                     help="port on 127.0.0.1 (default 0: a free one)")
    lab.add_argument("--open", action=argparse.BooleanOptionalAction, default=None,
                     help="open the page in a browser (default: when a display exists)")
    lab.add_argument("--lazy-frames", action="store_true",
                     help="read camera frames when first shown, not at start (default: only "
                          f"when the bags hold over {LAZY_BYTES >> 20} MiB)")
    lab.add_argument("--verbose", action="store_true", help="log every HTTP request")
    lab.set_defaults(func=_label)


def has_display() -> bool:
    """Whether a browser window can be shown here."""
    return (sys.platform in ("darwin", "win32")
            or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")))


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the server, even when this process inherited SIGINT ignored (a
    background job of a non-interactive shell: Python then installs no handler of its own)."""
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _label(args: argparse.Namespace) -> int:
    from vgps.flywheel.label_server import LabelSession, make_server, server_url

    for bag in args.bags:
        if not bag.exists():
            raise FileNotFoundError(f"no bag at {bag}")
        if not os.access(bag, os.R_OK):
            raise ValueError(f"bag {bag} is not readable (permissions)")
    lazy = args.lazy_frames or sum(_size(b) for b in args.bags) > LAZY_BYTES
    print(f"reading {len(args.bags)} bag(s){' (frames on demand)' if lazy else ''} ...",
          flush=True)
    session = LabelSession.load(args.bags, lazy_frames=lazy)
    for bag in session.bags:
        if not bag.episodes:
            print(f"note: {bag.bag} holds no episode", file=sys.stderr)
        for loss in bag.losses:
            print(f"not recovered from {bag.bag.name}: {loss}", file=sys.stderr)
    labelled = sum(1 for ep in session.episodes if ep.key in session.labels)
    try:
        server = make_server(session, port=args.port, verbose=args.verbose)
    except OSError as exc:
        raise RuntimeError(f"cannot serve on 127.0.0.1:{args.port} ({exc})") from None
    url = server_url(server)
    print(f"{len(session.episodes)} episodes ({labelled} labelled); labelling page: {url}")
    print("labels are saved beside the bags as BAG.labels.json; Ctrl-C to stop", flush=True)
    if args.open or (args.open is None and has_display()):
        webbrowser.open(url)
    _stop_on_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
