"""Read, edit and validate a workspace's ``model.py`` at the source level."""
