"""Sample datasets made from real images that installed packages ship (no network needed)."""
