"""comixup.evaluate."""
