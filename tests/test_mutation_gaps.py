"""Tests written to kill surviving mutants (``make mutation``): each one pins a behaviour that
a mutation of models, optim, data or engine code changed without any other test noticing."""

from __future__ import annotations
