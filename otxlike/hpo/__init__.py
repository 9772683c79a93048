"""``otxlike hpo``: hyper-parameter optimisation of a workspace with optuna (docs/hpo.md)."""
