"""Small shared helpers, the lowest layer: nothing here imports from ``seminas_ray`` outside ``utils``."""
