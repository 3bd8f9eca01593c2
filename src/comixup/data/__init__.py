"""comixup.data."""
