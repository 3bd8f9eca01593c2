"""comixup.models."""
