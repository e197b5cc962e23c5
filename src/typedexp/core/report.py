"""The lines a person reads on stderr: ``typedexp: error: ...`` and ``typedexp: warning: ...``.

Each is exactly one line whatever it quotes: newlines become spaces, and a part of the message
longer than ``PART_LIMIT`` characters (a 12,000-character value repeated back in an error) is cut
to its start and end, with its full length. Parts are what ``": "`` and ``"; "`` separate, so the
value is shortened and the explanation after it is kept. Secrets and what environment
interpolations resolved to are masked (``safety/secrets.py``). Imports nothing heavy, so an error
during start-up (Ctrl-C while torch loads) can still be printed.
"""

from __future__ import annotations

import re
import sys

from typedexp.core.safety.secrets import mask_report

PROGRAM = "typedexp"
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C
PART_LIMIT = 400  # characters: a path or the list of a config's fields (trainer: ~260) fits, a pasted value often does not
_SEPARATORS = re.compile(r"(: |; )")


def shorten(part: str) -> str:
    if len(part) <= PART_LIMIT:
        return part
    return f"{part[:160]}…{part[-40:]} ({len(part)} characters)"


def one_line(message: str) -> str:
    """``message`` on one line, each over-long part shortened."""
    flat = re.sub(r"\s*[\r\n]+\s*", " ", message.strip())
    return "".join(shorten(part) for part in _SEPARATORS.split(flat))


def print_error(message: str) -> None:
    print(f"{PROGRAM}: error: {one_line(mask_report(message))}", file=sys.stderr, flush=True)


def print_interrupted(message: str) -> None:
    """A stop the user asked for (Ctrl-C, SIGTERM): one line, and not an error, since nothing went
    wrong: ``typedexp: interrupted by SIGINT at epoch 2, step 36; saved ...; continue with: ...``."""
    print(f"{PROGRAM}: {one_line(mask_report(message))}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"{PROGRAM}: warning: {one_line(mask_report(message))}", file=sys.stderr, flush=True)
