"""The command line: the only code that imports typer and rich. ``app.py`` builds the app from one
module per verb under ``commands/``; ``render/`` turns core results into tables and lines."""
