"""SwanLab behind the ``Tracker`` protocol: the spec behind ``tracker=local|offline|cloud|disabled``.

SwanLab pitfalls handled here: ``config`` must be a plain dict; only Python
floats are logged (SwanLab converts tensors later on a thread, so a tensor mutated afterwards
records the wrong value); interactive prompts are off, so ``cloud`` without a key fails at once
instead of waiting for a login at stdin; project names are checked before ``init``. SwanLab's own
terminal messages (its version, where it saves, ``swanlab watch``/``sync`` hints, printed at init
and again at finish) go to the run's log file; typedexp prints one line saying how to look.
"""

from __future__ import annotations

import contextlib
import enum
import io
import os
import re
import shlex
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional, Protocol, TextIO, Union

from typedexp.core.checks import require_finite
from typedexp.core.errors import ConfigError, TrackerError
from typedexp.tracking.base import Media, NullTracker, RunOutcome, Tracker
from typedexp.tracking.render import render
from typedexp.tracking.swanlab_local import continue_resumed_experiments, unique_name
from typedexp.tracking.swanlab_patches import list_requirements_in_process, write_scalars_per_batch

if TYPE_CHECKING:
    import swanlab

# What goes into one run.log: Python floats, and the pictures of log_media.
LogValue = Union[float, "swanlab.Image"]

# SwanLab's own rule for project names (init fails on anything else).
PROJECT_NAME = re.compile(r"^[0-9a-zA-Z_\-+.]{1,100}$")
API_KEY_VARIABLE = "SWANLAB_API_KEY"
# One colour per run in the dashboard's comparison charts (Tableau 10: told apart at a glance,
# also in print). SwanLab otherwise draws every run in the same colour.
PALETTE = (
    "#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F",
    "#EDC948", "#B07AA1", "#FF9DA7", "#9C755F", "#BAB0AC",
)


class SwanLabMode(enum.Enum):
    """How SwanLab records a run."""

    local = "local"  # files + a local database that `swanlab watch <log_dir>` serves as a dashboard
    offline = "offline"  # files only, no network; `swanlab sync <run dir>` uploads them later
    cloud = "cloud"  # streams to swanlab.cn; needs SWANLAB_API_KEY and a network
    disabled = "disabled"  # SwanLab is not even imported; metrics.jsonl is still written


# The name swanlab.init takes for each mode (SwanLab calls the cloud "online").
SWANLAB_MODES: dict[SwanLabMode, Literal["online", "local", "offline", "disabled"]] = {
    SwanLabMode.local: "local",
    SwanLabMode.offline: "offline",
    SwanLabMode.cloud: "online",
    SwanLabMode.disabled: "disabled",
}


@dataclass(frozen=True)
class SwanLabTracking:
    mode: SwanLabMode = SwanLabMode.local
    project: str = "typedexp"  # SwanLab project; letters, digits and _-+. only
    log_dir: str = "swanlog"  # relative to the working directory; what `swanlab watch` opens
    workspace: Optional[str] = None  # cloud only: an organisation instead of your user
    description: str = ""
    # Seconds between hand-offs of logged points to SwanLab, done off the training thread
    # (0: each point at once, on the training thread). metrics.jsonl is never delayed.
    flush_every_s: float = 1.0

    def __post_init__(self) -> None:
        require_finite(self, "tracker")
        if not PROJECT_NAME.match(self.project):
            raise ConfigError(
                f"tracker.project={self.project!r}: use 1-100 letters, digits or _-+. (SwanLab's rule)"
            )
        if not self.flush_every_s >= 0:  # also refuses nan
            raise ConfigError(f"tracker.flush_every_s={self.flush_every_s}: must be >= 0 seconds")

    def check_available(self) -> None:
        """Fail before any work (and without importing swanlab) if the run cannot be tracked."""
        if self.mode is SwanLabMode.cloud and not os.environ.get(API_KEY_VARIABLE):
            raise TrackerError(
                f"tracker=cloud needs {API_KEY_VARIABLE} in the environment "
                "(or use tracker=local / tracker=offline, which need no account)"
            )

    def pick_color(self, sweep_job: int | None) -> str:
        """A palette colour: a sweep's job number, else the count of runs already in ``log_dir``."""
        if sweep_job is not None:
            return PALETTE[sweep_job % len(PALETTE)]
        earlier = sum(1 for _ in Path(self.log_dir).glob("run-*")) if Path(self.log_dir).is_dir() else 0
        return PALETTE[earlier % len(PALETTE)]

    def start(
        self,
        *,
        config: Mapping[str, object],
        run_name: str,
        run_dir: str,
        resume_id: str | None = None,
        color: str | None = None,
        chatter: Path | None = None,
        group: str | None = None,
        tags: Sequence[str] = (),
        note: str = "",
    ) -> Tracker:
        """Begin a SwanLab run holding ``config``; fails fast, never prompts.

        ``color`` is the run's colour in the dashboard; ``chatter`` the file that receives what
        SwanLab prints (None: the terminal). ``group`` gathers runs in the dashboard: a sweep's
        jobs pass their sweep dir, so they show together. ``tags`` become SwanLab's tags and
        ``note`` the first line of its description, above ``description`` (or the run dir).

        ``resume_id`` continues the SwanLab run of that id (``resume="allow"``). In ``cloud`` mode
        that is the same run on the server. SwanLab 0.10.3 writes a resumed ``local``/``offline``
        run to a new ``run-<time>-<id>`` folder with the same id: ``swanlab sync`` uploads an
        offline run's folders into one experiment, and in ``local`` mode the dashboard continues
        the earlier experiment (``swanlab_local``). A new local run whose name the dashboard
        already holds is named ``<name> #2`` (SwanLab would glue ``-2`` to the last value).
        """
        if self.mode is SwanLabMode.disabled:
            return NullTracker()
        self.check_available()
        api_key = os.environ.get(API_KEY_VARIABLE) or None
        if api_key is not None and api_key in (self.project, self.workspace):
            raise TrackerError(f"tracker.project / tracker.workspace must not hold {API_KEY_VARIABLE}")
        # An interpolation such as ${oc.env:SWANLAB_API_KEY} resolves before it gets here: mask it.
        description = "\n".join(line for line in (note, self.description or f"typedexp run in {run_dir}") if line)
        if api_key is not None:
            description, run_name = (text.replace(api_key, "***") for text in (description, run_name))
        import swanlab

        list_requirements_in_process()
        if self.mode is SwanLabMode.local:
            write_scalars_per_batch()
            continue_resumed_experiments()
            if resume_id is None:  # a resumed run continues its experiment, under its name
                run_name = unique_name(Path(self.log_dir), run_name)
        cloud = self.mode is SwanLabMode.cloud
        # Failures inside init (unwritable log_dir, no network) propagate: GuardedTracker turns
        # them into one warning and training goes on. The key is only handed over for cloud.
        with printed_to(chatter):
            run = swanlab.init(
                mode=SWANLAB_MODES[self.mode],
                project=self.project,
                workspace=self.workspace,
                log_dir=self.log_dir,
                name=run_name,
                description=description,
                config=dict(config),
                color=color,
                group=group,
                tags=list(tags) or None,
                reinit=True,
                id=resume_id,
                resume="allow" if resume_id else None,
                settings=swanlab.Settings(interactive=False, api_key=api_key if cloud else None),
            )
        return SwanLabTracker(run, flush_every_s=self.flush_every_s, view=self.view_command(run.dir), chatter=chatter)

    def view_command(self, swanlab_run_dir: Path) -> str:
        """How to look at this run, for the line a run starts with: a command to type later, worded
        so that it does not read as something that already ran."""
        if self.mode is SwanLabMode.local:
            where = "" if self.log_dir == "swanlog" else f" --logdir {shlex.quote(self.log_dir)}"  # its default
            return f"tracker local, view with: typedexp dashboard{where}"
        if self.mode is SwanLabMode.offline:
            return f"tracker offline, upload with: swanlab sync {swanlab_run_dir}"
        return "tracker cloud, view on swanlab.cn"


@contextlib.contextmanager
def printed_to(chatter: Path | None) -> Iterator[None]:
    """Send what is printed inside the block to ``chatter`` (appended), or leave it be (None).

    SwanLab has no public setting that silences its console; its console writes to whatever
    ``sys.stdout`` is when it prints, so redirecting the standard streams is enough.
    """
    if chatter is None:
        yield
        return
    with chatter.open("a", encoding="utf-8") as file:
        log = AdvisingDashboard(file)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield


# SwanLab's hint "Run `swanlab watch swanlog` to view ..." names a server that docs/dashboard.md
# calls unsafe (any host, another port without asking); the log advises typedexp's instead.
SWANLAB_WATCH = re.compile(r"`swanlab watch(?: (?P<logdir>[^`]+))?`")  # as SwanLab quotes it


def advise_dashboard(text: str) -> str:
    """``text`` with each ``swanlab watch DIR`` turned into ``typedexp dashboard --logdir DIR``."""
    return SWANLAB_WATCH.sub(
        lambda match: "`typedexp dashboard" + (f" --logdir {match['logdir']}" if match["logdir"] else "") + "`", text
    )


class AdvisingDashboard(io.TextIOBase):
    """A text stream that writes to ``file`` what is printed, with ``advise_dashboard`` applied.

    SwanLab prints each message whole (one ``print`` per line), so a command is never split
    between two writes."""

    def __init__(self, file: TextIO) -> None:
        self.file = file

    def write(self, text: str) -> int:
        self.file.write(advise_dashboard(text))
        return len(text)

    def flush(self) -> None:
        self.file.flush()


class SwanLabRun(Protocol):
    """The part of ``swanlab.Run`` the tracker uses."""

    @property
    def id(self) -> str: ...

    def log(self, data: Mapping[str, LogValue], step: int | None = None) -> None: ...

    def finish(self, state: Literal["success", "crashed", "aborted"] = "success", error: str | None = None) -> None: ...


class SwanLabTracker:
    """Hands logged points to a SwanLab run from a thread of its own, every ``flush_every_s``.

    SwanLab's ``run.log`` validates, flattens and queues each point on the calling thread: about
    80 µs idle and 250-400 µs while training competes for the CPU (measured), 3-4% of a `small`
    step at ``log_every=10``. Here the training thread only appends the point to a deque; a
    daemon thread hands the pending points over in order, with their steps, while torch runs
    kernels without the GIL. The dashboard lags by up to ``flush_every_s``. ``finish`` hands
    over everything still pending before closing the run, so a crash or Ctrl-C loses nothing;
    only a SIGKILL loses the pending points (metrics.jsonl has them). With ``flush_every_s=0``
    every point is handed over at once, on the training thread.
    """

    def __init__(
        self, run: SwanLabRun, *, flush_every_s: float = 0.0, view: str = "", chatter: Path | None = None
    ) -> None:
        self.run = run
        self.flush_every_s = flush_every_s
        self.view = view  # how to look at the run: "tracker local, view with: typedexp dashboard"
        self._chatter = chatter
        self._pending: deque[tuple[dict[str, LogValue], int]] = deque()  # (metrics, step), oldest first
        self._failure: Exception | None = None  # the hand-off thread's error, raised on the next log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if flush_every_s > 0:
            self._thread = threading.Thread(target=self._hand_off_periodically, name="typedexp-swanlab", daemon=True)
            self._thread.start()

    @property
    def run_id(self) -> str:
        """SwanLab's id of this run; a resumed typedexp run passes it back as ``resume_id``."""
        return self.run.id

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        if self._failure is not None:
            raise self._failure  # GuardedTracker turns it into one warning
        self._pending.append((dict(metrics), step))
        if self._thread is None:
            self._hand_off()

    def log_media(self, media: Media, *, step: int, epoch: int) -> None:
        """The same picture as media/*.png, as a ``swanlab.Image`` (an image chart in the dashboard).

        Drawn here, on the training thread, between epochs; queued behind the scalars before it.
        """
        if self._failure is not None:
            raise self._failure
        import swanlab

        picture = render(media)
        self._pending.append(({media.name: swanlab.Image(picture.image, caption=picture.caption)}, step))
        if self._thread is None:
            self._hand_off()

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        try:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            if self._failure is None:
                self._hand_off()
        finally:
            with printed_to(self._chatter):
                self.run.finish(state=outcome.swanlab_state, error=error)
        if self._failure is not None:
            raise self._failure  # a hand-off failure after the last log still gets its warning

    def _hand_off(self) -> None:
        while self._pending:  # deque.popleft is atomic: the training thread may append meanwhile
            metrics, step = self._pending.popleft()
            self.run.log(metrics, step=step)

    def _hand_off_periodically(self) -> None:
        while not self._stop.wait(self.flush_every_s):
            try:
                self._hand_off()
            except Exception as exc:
                self._failure = exc
                return
