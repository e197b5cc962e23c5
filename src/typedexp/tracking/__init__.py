"""Where metrics go: a small ``Tracker`` protocol and its implementations (JSONL, SwanLab, none)."""

from typedexp.tracking.base import FanOut, NullTracker, RunOutcome, Tracker
from typedexp.tracking.jsonl import JsonlTracker
from typedexp.tracking.swanlab_tracker import SwanLabMode, SwanLabTracking

__all__ = [
    "FanOut",
    "JsonlTracker",
    "NullTracker",
    "RunOutcome",
    "SwanLabMode",
    "SwanLabTracking",
    "Tracker",
]
