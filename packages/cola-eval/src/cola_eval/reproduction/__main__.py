"""`python -m cola_eval.reproduction --size {smoke,cpu,gpu} --out DIR [--workers N]`."""

import sys

from cola_eval.reproduction.cli import main

sys.exit(main())
