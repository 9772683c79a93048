"""Renderings of core results: rich tables (``tables``), plain status lines (``lines``) and the
training progress display (``progress``)."""
