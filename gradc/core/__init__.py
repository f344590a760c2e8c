"""The core: the IR, the op table, programs and their transformations (reverse mode, rewrites),
and the NumPy reference evaluator."""
