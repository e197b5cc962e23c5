"""Where metrics go: a small ``Tracker`` protocol and its implementations (JSONL, SwanLab, none)."""

from typedexp.tracking.base import FanOut, NullTracker, RunOutcome, Tracker, TrackerSpec
from typedexp.tracking.jsonl import JsonlTracker
from typedexp.tracking.swanlab_tracker import SwanLabMode, SwanLabTracking

# The `tracker` group, default first: one option per SwanLab mode.
OPTIONS: dict[str, TrackerSpec] = {mode.value: SwanLabTracking(mode=mode) for mode in SwanLabMode}

__all__ = [
    "FanOut",
    "JsonlTracker",
    "NullTracker",
    "OPTIONS",
    "RunOutcome",
    "SwanLabMode",
    "SwanLabTracking",
    "Tracker",
    "TrackerSpec",
]
