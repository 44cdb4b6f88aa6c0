"""Command-line interface (``vtk``)."""
