"""Reproduce the paper's claims at small scale with one command (cola_eval.reproduction):

    uv run python benchmarks/reproduce.py --size {smoke,cpu,gpu} --out DIR [--workers N]

DIR then holds results.md, results.json and utilization.png; `--help` lists the other flags.
"""

import sys

from cola_eval.reproduction import main

if __name__ == "__main__":
    sys.exit(main())
