"""gradc's benchmark suite (see README.md): python benchmarks/run.py [--cases expr|mlp|all] [--quick]."""
