import sys

from diffusegae.eval.cli import main

sys.exit(main())
