"""comixup.solver."""
