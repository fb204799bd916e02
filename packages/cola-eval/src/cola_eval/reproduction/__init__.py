"""The paper's claims reproduced at small scale: the experiment's plan, its jobs on N workers, the evaluation
every run shares and the summary (results.md, results.json, utilization.png). Run it with
``benchmarks/reproduce.py`` or ``python -m cola_eval.reproduction``; see :mod:`cola_eval.reproduction.cli`."""

from cola_eval.reproduction.cli import main

__all__ = ["main"]
