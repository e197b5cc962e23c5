"""The hand-over of a hyper-parameter search's per-epoch check from the sweeper to its jobs.

Plain Python (no Hydra, no Optuna). Under Hydra's basic launcher every job runs in the sweeper's
own process, one after another: the sweeper (``hpo.py``) offers each job's check, keyed by the job
number it launches it under (``hydra.job.num``), and the task takes its own as it starts. The
check answers ``engine.fit``'s question after every epoch ("stop here?"), which is how a trial
reports its validation metric and is pruned without the engine knowing about Optuna.

Jobs that a launcher runs in other processes (joblib's workers, cluster nodes) find nothing here:
they train to the end and the sweeper still tells the study their final value (docs/hpo.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from typedexp.engine.loop import EpochCheck

_offered: dict[int, EpochCheck] = {}  # job number -> its check, while the sweeper launches it


@contextmanager
def offered(checks: Mapping[int, EpochCheck]) -> Iterator[None]:
    """Offer ``checks`` (by job number) while the block launches those jobs; withdrawn after it."""
    _offered.update(checks)
    try:
        yield
    finally:
        for job in checks:
            _offered.pop(job, None)


def take(job: int) -> EpochCheck | None:
    """The check offered for job ``job``, once: a job number that runs again finds none."""
    return _offered.pop(job, None)
