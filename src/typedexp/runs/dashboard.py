"""``typedexp dashboard``: SwanLab's own local dashboard over every run in a SwanLab log directory.

The server is SwanLab's (``swanboard.SwanBoardRun.run``, what ``swanlab watch`` runs). This module
checks the arguments first, so that a mistake is one ``typedexp: error:`` line instead of a
server that starts on the wrong port or shows an empty project:

- it binds 127.0.0.1 only (``swanlab watch`` takes any host);
- a port that is taken is an error (``swanlab watch`` silently moves to another port);
- a log directory without SwanLab's database (``runs.swanlab``, written by ``tracker=local``) is
  an error (``swanboard`` logs one and serves an empty page; a file that is not a database
  stopped it with a traceback).

Then it closes two holes of swanboard 0.1.10b2 (``harden``: files outside the runs' media
folders, foreign ``Host`` headers) and fixes its run table (``fix_run_table``), in this process.

SwanLab 0.10 marks its local dashboard (``swanlab/deprecated/local.py``) as a transition that is
no longer maintained; ``pyproject.toml`` pins ``swanlab[dashboard]<0.11``. docs/dashboard.md says
what to do when it goes: offline logging and ``swanlab sync``.

Ctrl-C (or SIGTERM) stops the server cleanly and exits with 0: it is the documented way to stop
it, not a failure, so ``typedexp dashboard; next-command`` goes on as after any normal end.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from typedexp.core.errors import TypedexpError
from typedexp.core.report import print_error

if TYPE_CHECKING:  # starlette comes with swanlab[dashboard] (swanboard is a FastAPI app)
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Receive, Scope, Send

HOST = "127.0.0.1"  # loopback only: the dashboard can delete and stop runs, and has no login
DEFAULT_PORT = 5092  # SwanLab's own default port
DEFAULT_LOG_DIR = "swanlog"  # tracker.log_dir's default
DATABASE = "runs.swanlab"  # SwanLab's SQLite database, written by tracker=local runs
EXIT_ERROR = 2  # as every other user mistake of the CLI

DESCRIPTION = (
    "Serve SwanLab's local dashboard on every tracker=local run in a SwanLab log directory, on "
    f"http://{HOST}:PORT only. Ctrl-C stops it (exit code 0)."
)


class DashboardError(TypedexpError):
    """A bad argument of ``typedexp dashboard``: one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one ``typedexp: error:`` line (argparse prints usage + 2 lines)."""

    def error(self, message: str) -> NoReturn:
        raise DashboardError(f"dashboard: {message}; see typedexp dashboard --help")


def port_number(text: str) -> int:
    """``--port``: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def parser() -> argparse.ArgumentParser:
    cli = _Parser(prog="typedexp dashboard", description=DESCRIPTION)
    cli.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"TCP port on {HOST} (default {DEFAULT_PORT})"
    )
    cli.add_argument(
        "--logdir",
        default=DEFAULT_LOG_DIR,
        help=f"the SwanLab log directory, tracker.log_dir of the runs (default {DEFAULT_LOG_DIR})",
    )
    return cli


@dataclass(frozen=True)
class DashboardArgs:
    log_dir: Path  # absolute
    port: int
    runs: int  # experiments in the log dir's database


def parse(args: Sequence[str]) -> DashboardArgs:
    namespace = parser().parse_args(list(args))
    port = namespace.port
    log_dir = namespace.logdir
    if not isinstance(port, int) or not isinstance(log_dir, str):  # argparse's Namespace is untyped
        raise TypeError("argparse returned unexpected types")
    path = check_log_dir(log_dir)
    return DashboardArgs(path, port, count_runs(path, log_dir))


def check_log_dir(text: str) -> Path:
    """The log directory as an absolute path, if it holds SwanLab's local database."""
    path = Path(text).expanduser().absolute()
    if not path.exists():
        raise DashboardError(f"--logdir {text}: no such directory; runs with tracker=local write one (tracker.log_dir)")
    if not path.is_dir():
        raise DashboardError(f"--logdir {text}: not a directory")
    if not (path / DATABASE).is_file():
        raise DashboardError(
            f"--logdir {text}: holds no tracker=local runs (no {DATABASE}); tracker=offline runs are "
            "shown by `swanlab sync`, not by the local dashboard"
        )
    return path


def count_runs(log_dir: Path, text: str) -> int:
    """The runs in SwanLab's database, read-only; a file that is not one is refused here, since
    swanboard would stop with a traceback (sqlite3's "file is not a database")."""
    import sqlite3

    uri = f"{(log_dir / DATABASE).as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as database:
            (count,) = database.execute("SELECT count(*) FROM experiment").fetchone()
    except sqlite3.Error as exc:
        raise DashboardError(f"--logdir {text}: {DATABASE} is not SwanLab's database ({exc})") from None
    return int(count)


def check_port_free(port: int) -> None:
    """Refuse a taken port before SwanLab starts (it would move to another port without asking).

    ``SO_REUSEADDR`` as uvicorn sets it, so a port left in TIME_WAIT by a stopped dashboard is free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DashboardError(f"--port {port}: {HOST}:{port} is in use; choose another with --port") from None
            if exc.errno == errno.EACCES:
                raise DashboardError(f"--port {port}: not allowed for this user; choose one above 1023") from None
            raise DashboardError(f"--port {port}: cannot listen on {HOST}:{port} ({exc.strerror})") from None


class _Stopped(Exception):
    """SIGTERM, raised where the main thread is (after uvicorn's graceful shutdown)."""


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the server like Ctrl-C: uvicorn shuts down, then re-raises the signal here."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class NoEscapingPaths:
    """Answers 404 to a request path with a ``..`` segment or an empty one (``//``).

    swanboard's media route joins the rest of the URL path onto a run's media folder
    (``os.path.join``, no check), so ``/api/v1/media/..%2F..%2F..%2Fetc%2Fpasswd`` (or an absolute
    path after ``//``) served any file the user can read (seen with swanboard 0.1.10b2).
    ``scope["path"]`` is already percent-decoded, so encoded slashes are caught too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and isinstance(path, str) and escapes(path):
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("not found", status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def escapes(path: str) -> bool:
    """Whether a decoded URL path could leave the folder a route joins it onto."""
    segments = path.split("/")[1:]  # the path starts with "/"; a trailing "/" leaves one empty segment
    return ".." in segments or "" in segments[:-1]


def harden(app: Starlette) -> None:
    """Two guards SwanLab's dashboard lacks, added through Starlette's public middleware API.

    - ``NoEscapingPaths``: no file outside the runs' media folders (see its docstring).
    - Only ``Host: 127.0.0.1`` or ``localhost``: a web page from another site that points its own
      name at 127.0.0.1 (DNS rebinding) cannot read runs or delete them through your browser.
    """
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app.add_middleware(NoEscapingPaths)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=[HOST, "localhost"], www_redirect=False)


def fix_run_table(log_dir: Path) -> bool:
    """Make the project's run table read each metric's own folder; True if it was patched.

    swanboard 0.1.10b2 builds the table (``controller.project.get_project_summary``) from
    ``get_tag_dir(run_id, str(tag["sort"]))``: the metric's position among the run's metrics,
    from 0. SwanLab 0.10's local writer names the folders from 1, so every column showed the
    previous metric's last value (and the first "TypeError"); plain ``swanlab watch`` does too.
    The replacement looks the position up in the database and returns the folder SwanLab wrote
    (``tag.folder``, which each run's own page already uses). Only on that exact swanboard
    (the version SwanLab's local mode requires, ``patch_gates.PINS``) and only while
    ``get_tag_dir`` is its ``(name, tag)`` function: otherwise swanboard runs as it is.
    """
    from typedexp.core.versions import allowed, has_parameters

    if not allowed("dashboard_run_table", lambda: has_parameters(_tag_dir_function(), ("name", "tag"))):
        return False
    import swanboard.controller.project as project

    original = project.get_tag_dir
    database = f"{(log_dir / DATABASE).as_uri()}?mode=ro"

    def get_tag_dir(run_id: str, position: str) -> str:
        import sqlite3

        with contextlib.closing(sqlite3.connect(database, uri=True)) as db:
            row = db.execute(
                "SELECT tag.folder FROM tag JOIN experiment ON tag.experiment_id = experiment.id "
                "WHERE experiment.run_id = ? AND tag.sort = ?",
                (run_id, int(position)),
            ).fetchone()
        folder = row[0] if row is not None and isinstance(row[0], str) else position
        return original(run_id, folder)

    # The module looked the function up by name at import: replace the name there.
    setattr(project, "get_tag_dir", get_tag_dir)
    return True


def _tag_dir_function() -> object:
    import swanboard.controller.project as project

    return getattr(project, "get_tag_dir", None)


def serve(args: DashboardArgs) -> None:
    """SwanLab's dashboard server, in this process, until Ctrl-C or SIGTERM."""
    # swanboard reads every run's metric files under SWANLAB_LOG_DIR, not under the path it is
    # given (without it, the run table shows "TypeError" for every value); `swanlab watch` sets it too.
    os.environ["SWANLAB_LOG_DIR"] = str(args.log_dir)
    from swanboard import SwanBoardRun
    from swanboard.app import app  # the application SwanBoardRun.run hands to uvicorn

    harden(app)
    fix_run_table(args.log_dir)

    try:
        SwanBoardRun.run(path=str(args.log_dir), host=HOST, port=args.port)
    except SystemExit as exc:
        # swanboard exits 7 when the port was taken between the check and its bind.
        if exc.code == 7:
            raise DashboardError(f"--port {args.port}: {HOST}:{args.port} is in use; choose another with --port") from None
        raise


def main(args: Sequence[str]) -> None:
    """``typedexp dashboard [--port N] [--logdir DIR]``; exits 2 on a bad argument, 0 when stopped."""
    try:
        with stop_on_sigterm():
            parsed = parse(args)
            check_port_free(parsed.port)
            print(
                f"typedexp: dashboard of {parsed.runs} runs in {parsed.log_dir} on "
                f"http://{HOST}:{parsed.port} (Ctrl-C stops it)",
                flush=True,
            )
            serve(parsed)  # returns when uvicorn stopped on a signal that was ignored here
    except DashboardError as exc:
        print_error(str(exc))
        sys.exit(EXIT_ERROR)
    except (KeyboardInterrupt, _Stopped):
        pass  # uvicorn has shut down gracefully and re-raised the signal
    print("typedexp: dashboard stopped", flush=True)
