"""textkit.util: counting helpers on top of textkit.base."""
