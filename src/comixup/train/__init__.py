"""comixup.train."""
