"""Command-line options shared by the commands that send requests (``eval``, ``check``).

One definition, so the limits' names, defaults and help read the same everywhere; the values
are checked by :func:`posttrain.cli.runs.check_run_limits`."""

from __future__ import annotations

from typing import Any


def add_request_options(p: Any, *, limit_help: str = "only the first N items",
                        epochs_help: str = "samples per item (pass@k, pass^k)") -> None:
    """Add --concurrency, --limit, --epochs, --timeout, --max-retries, --deadline, --no-cache
    and --cache-expiry to the argparse parser ``p``."""
    p.add_argument("--concurrency", type=int, help="requests in flight per model")
    p.add_argument("--limit", type=int, help=limit_help)
    p.add_argument("--epochs", type=int, default=1, help=epochs_help)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt")
    p.add_argument("--max-retries", type=int, default=4)
    p.add_argument("--deadline", type=float, default=600.0,
                   help="seconds for all attempts of one request together")
    p.add_argument("--no-cache", action="store_true", help="send every request even if cached")
    p.add_argument("--cache-expiry", metavar="AGE",
                   help="serve cached answers up to AGE old (30m, 12h, 7d, never; default 7d "
                        "for endpoints, never for local weights)")
