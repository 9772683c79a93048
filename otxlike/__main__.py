"""``python -m otxlike`` runs the command-line interface."""

from otxlike.cli.app import main

main()
