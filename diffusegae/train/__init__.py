"""Training: Diff-AE pretraining (stage 1), GAE on frozen z_sem (stage 2), joint fine-tuning (stage 3),
and an optional GAE refit on the tuned encoder (stage 4).

    from diffusegae.train import train
    train("checkpoints/tiny32", preset="tiny32", stage=1, steps=1000, batch_size=32)

`python -m diffusegae.train --help` maps one to one onto `train()`; `add_arguments(parser)` and `run(args)`
let another command line reuse that parser. Names load lazily, so building the parser imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "train": "diffusegae.train.loop",
    "add_arguments": "diffusegae.train.cli",
    "run": "diffusegae.train.cli",
}
__all__ = ["add_arguments", "run", "train"]

if TYPE_CHECKING:  # pragma: no cover
    from diffusegae.train.cli import add_arguments, run
    from diffusegae.train.loop import train


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'diffusegae.train' has no attribute {name!r}")
