"""Backends: programs -> readable Python source (the common printer, expression kernels, MLP steps)."""
