"""Small shared helpers (no Ray, no torch)."""
