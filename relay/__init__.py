"""The relay: a PEP 503/691 simple index over export directories, per sha and per branch."""
