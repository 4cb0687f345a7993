"""`python -m diffusegae.train ...`: one training stage on a checkpoint directory (see cli.py)."""

from diffusegae.train.cli import main

if __name__ == "__main__":
    main()
