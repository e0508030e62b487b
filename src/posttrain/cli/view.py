"""``posttrain view [--store PATH] [--host H] [--port P]``: browse runs, follow live runs and
steer agents, compare, vote, review."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command

HELP = ("web page to browse runs, follow runs live and steer agents, compare side by side, "
        "vote blind and review items")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=Path("posttrain.db"),
                        help="the store (default: posttrain.db)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; any other needs the token)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any)")
    parser.add_argument("--token", help="token to require (default: random when not local)")


@register_command("view", order=70)
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("view", help=HELP, description=HELP)
    _configure(parser)
    parser.set_defaults(func=run)
    return parser


def _url_host(name: str) -> str:
    return f"[{name}]" if ":" in name else name


def _addresses(host: str) -> list[str]:
    """Where a browser can reach a server bound to ``host``: the host itself, or for a wildcard
    (``0.0.0.0``, ``::``) this machine's address and the loopback one (a URL naming the wildcard
    is no address to open)."""
    if host not in ("0.0.0.0", "::", ""):
        return [host]
    import socket

    family, loopback, probe = ((socket.AF_INET6, "::1", "fd00::1") if host == "::" else
                               (socket.AF_INET, "127.0.0.1", "10.255.255.255"))
    found = []
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.connect((probe, 9))  # no packet is sent: this only picks the outgoing address
            address = udp.getsockname()[0]
            if address not in (loopback, "0.0.0.0", "::"):
                found.append(address)
    except OSError:
        pass
    return [*found, loopback]


def _bind_any_port(host: str) -> Any:
    """A listening socket on ``host`` and a free port the system picks (``--port 0``)."""
    import socket

    try:
        family = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM,
                                    flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, 0), family=family, backlog=128)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:0: {exc.strerror or exc}",
                        field="--port") from None


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from posttrain.web.server import STORE_KEY, create_app, needs_token

    if not args.store.exists():
        raise UserError("no store here; run an eval first or pass --store", file=args.store)
    token = args.token or (secrets.token_urlsafe(18) if needs_token(args.host) else None)
    app = create_app(args.store, token=token)
    query = f"?token={token}" if token else ""
    port, sock = args.port, None
    if port == 0:  # any free port: bind it here, so the URL printed names the one bound
        sock = _bind_any_port(args.host)
        port = sock.getsockname()[1]
    urls = [f"http://{_url_host(name)}:{port}/{query}" for name in _addresses(args.host)]

    def announce(*_: object) -> None:
        print(f"posttrain view: {urls[0]}", flush=True)
        for other in urls[1:]:
            print(f"  also: {other}", flush=True)
        if token:
            print("every request needs this token (it is set as a cookie when you open the URL)",
                  flush=True)
        if app[STORE_KEY].read_only:
            print(f"{args.store} is read-only here: browse it; votes, reviews and corrections "
                  "are refused", flush=True)

    try:
        if sock is not None:
            web.run_app(app, sock=sock, print=announce, access_log=None)
        else:
            web.run_app(app, host=args.host, port=args.port, print=announce, access_log=None)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}",
                        field="--port") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    """``posttrain view`` with these arguments."""
    from posttrain.cli import main as cli_main

    return cli_main(["view", *(sys.argv[1:] if argv is None else argv)])

if __name__ == "__main__":
    raise SystemExit(main())
