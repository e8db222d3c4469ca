"""Depot's benchmark suite (`python -m bench`): Depot against clearly labelled baselines,
under the same gunicorn settings, with results in bench/results.md and bench/plots/."""
