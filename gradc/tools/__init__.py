"""Tools around the compiler: the command line, gradient checks, benchmarks and the hand-written reference backprop."""
