"""Where the shipped artifacts live (a source checkout: the package sits beside checkpoints/)."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
# The checkpoint loaded by default (pipeline, server, demo) and the model repository built for it.
SHIPPED_CHECKPOINT = PROJECT / "checkpoints" / "tiny32"
SHIPPED_REPOSITORY = PROJECT / "model_repository"
