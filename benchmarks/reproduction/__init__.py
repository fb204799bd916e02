"""Parts of benchmarks/reproduce.py: evaluation, timing estimate, summary table and plots."""
