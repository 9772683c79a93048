"""One module per verb; each has ``ORDER`` (its place in ``--help``) and ``register(app)``."""
