"""comixup.mixers."""
