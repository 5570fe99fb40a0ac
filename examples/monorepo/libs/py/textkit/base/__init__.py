"""textkit.base: the bottom of the textkit chain, how text becomes words."""
