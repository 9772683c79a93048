"""``python -m otxlike`` runs the command-line interface."""

from otxlike.cli.main import main

main()
