"""The `gradc` command line: compile, show, check and bench MLP specs and math expressions.

Every error a user can cause (bad spec, bad expression, bad option, unreadable or unwritable file)
prints one line ``gradc: error: <message>`` on stderr and exits with status 2; `gradc check` exits 1
when a gradient is over tolerance. Expressions are parsed by `gradc.frontend.parse.parse_expr` (an AST
whitelist: no eval, no sympify), so an expression string can never run code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import keyword
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from gradc import __version__
from gradc.errors import GradcError
from gradc.tools.describe import describe_expr, describe_mlp, imports
from gradc.tools.sources import SPEC_SUFFIXES, UsageError, load_source, names

PROG = "gradc"

_SPEC_EXAMPLE = """\
An MLP spec (.yaml/.yml/.json/.toml), batch-major (a = act(a @ W + b) per layer):

  name: digits_mlp
  input: 64
  layers:
    - {units: 30, activation: sigmoid}      # or a formula in z: "z*tanh(softplus(z))"
    - {units: 10, activation: sigmoid}
  loss: mse                                 # sum_squared, softmax_cross_entropy, binary_cross_entropy, hinge
  l2: 0.0
  dtype: float64                            # or float32
"""


def _expr_help() -> str:
    """The expression syntax, with the function names the parser accepts (from the op table)."""
    from gradc.frontend.functions import TEXT_CONSTANTS, text_functions

    functions = ", ".join(sorted(text_functions(), key=str.lower))
    text = ("Expressions use SymPy syntax: numbers, names, + - * / **, parentheses and calls of "
            f"{functions}; {' and '.join(TEXT_CONSTANTS)} are constants. Expressions are parsed "
            "through a syntax-tree whitelist and never evaluated: anything else is rejected.")
    return textwrap.fill(text, 100)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one `gradc: error:` line and exit status 2 (raised, not exited)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


_FORMAT = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `gradc` (its --help output documents every command)."""
    expr_help = _expr_help()
    parser = _Parser(
        prog=PROG, formatter_class=_FORMAT,
        description="gradc compiles MLP specs and SymPy-syntax expressions to readable, Numba-compiled "
                    "gradient code:\na standalone Python module that needs only numpy and numba.",
        epilog=f"""examples:
  gradc compile net.yaml -o build/net.py
  gradc compile --expr "(x + sigmoid(y))/(sigmoid(x) + (x + y)**2)" --wrt x,y -o f.py
  gradc show net.yaml | less
  gradc check net.yaml --points 5 --tol 1e-6
  gradc check --expr "log(1 + exp(x*y))"
  gradc bench net.yaml --batch 64 --repeat 20
  gradc explain --expr "(x+y)*z" --at x=-2,y=5,z=-4 -o circuit.svg
  gradc show net.yaml --cost --measure

{_SPEC_EXAMPLE}
Run 'gradc COMMAND --help' for the options of a command. Errors print one line 'gradc: error: ...'
and exit with status 2.""")
    parser.add_argument("--version", action="version", version=f"gradc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    _add_compile(commands, expr_help)
    _add_show(commands, expr_help)
    _add_check(commands, expr_help)
    _add_bench(commands)
    _add_warmup(commands)
    _add_explain(commands, expr_help)
    return parser


def _add_compile(commands: argparse._SubParsersAction, expr_help: str) -> None:
    """`gradc compile`: write the generated module and print its signatures."""
    compile_ = commands.add_parser(
        "compile", formatter_class=_FORMAT, help="write the generated module and print its signatures",
        description="Compile an MLP spec or expressions and write the standalone module (numpy + numba "
                    "only).\nPrints the path written and the public functions' signatures.",
        epilog=f"""examples:
  gradc compile net.yaml -o build/net.py          # parent folders are created
  gradc compile net.yaml --dtype float32 --name small -o net32.py
  gradc compile --expr "x*sin(y)" -o f.py         # args: the free symbols sorted by name
  gradc compile --expr "w0*x0 + w1*x1 + w2" --args x0,x1,w0,w1,w2 --wrt w0,w1,w2 --name neuron -o n.py
  gradc compile --expr "x*y" --expr "x + y" -o two.py   # several expressions, one kernel

the written module, for a spec:
  init_params(seed=0), forward(params, X), loss(params, X, Y), loss_and_grad(params, X, Y),
  sgd_step(params, X, Y, lr)   -- X is (N, input), W_i (fan_in, fan_out), b_i (fan_out,)
and for expressions:
  forward(*args), grad(*args), value_and_grad(*args)   -- inputs broadcast like NumPy
Import it with 'from net import loss_and_grad' or gradc.load("build/net.py").

{expr_help}""")
    _add_source(compile_)
    compile_.add_argument("-o", "--output", required=True, metavar="OUT.py",
                          help="where to write the module (must end in .py; parent folders are created)")


def _add_show(commands: argparse._SubParsersAction, expr_help: str) -> None:
    """`gradc show`: print the generated source."""
    show = commands.add_parser(
        "show", formatter_class=_FORMAT, help="print the generated source (highlighted on a terminal)",
        description="Print the generated module's source: syntax-highlighted when stdout is a terminal "
                    "(and pygments is installed),\nplain otherwise.",
        epilog=f"""examples:
  gradc show net.yaml
  gradc show --expr "log(1 + exp(x))" --no-color > f.py
  NO_COLOR=1 gradc show net.yaml

{expr_help}""")
    _add_source(show)
    show.add_argument("--no-color", action="store_true", help="never highlight (also: NO_COLOR set)")
    show.add_argument("--cost", action="store_true", help="print the cost report instead of the source: op "
                      "counts, sympy.diff + cse swell, temporaries, bytes (and FLOPs for a spec)")
    show.add_argument("--measure", action="store_true", help="with --cost: time it, next to this machine's "
                      "memory-bandwidth (and GEMM-peak) bounds")
    show.add_argument("--batch", type=int, default=64, help="with --cost, spec: rows per step (default 64)")


def _add_explain(commands: argparse._SubParsersAction, expr_help: str) -> None:
    """`gradc explain`: the circuit with values and adjoints, or a network's layer graph."""
    explain = commands.add_parser(
        "explain", formatter_class=_FORMAT, help="the gate-by-gate table and circuit picture (values, adjoints)",
        description="""Print the gate-by-gate table of an expression at a point: each gate's value (forward
pass), then the backward pass (upstream adjoint × local derivative = adjoint, += where a value fans
out), in the names of the generated code. For a spec, print the layer graph with shapes (and with
--at-batch, each layer's mean/std of values and gradients). -o draws the picture: .svg, .png or .dot.""",
        epilog=f"""examples:
  gradc explain --expr "(x+y)*z" --at x=-2,y=5,z=-4 -o circuit.svg
  gradc explain --expr "1/(1+exp(-(w0*x0+w1*x1+w2)))" --at w0=2,w1=-3,w2=-3,x0=-1,x1=-2 -o neuron.png
  gradc explain net.yaml -o net.svg
  gradc explain net.yaml --at-batch batch.npz    # arrays X, Y (and W1, b1, ... else init_params(0))

{expr_help}""")
    _add_source(explain)
    explain.add_argument("--at", metavar="x=1,y=2", help="expressions: the point (a number per argument)")
    explain.add_argument("--at-batch", metavar="FILE.npz", help="spec: a batch (X, Y, optionally parameters)")
    explain.add_argument("-o", "--output", metavar="OUT", help="draw the picture to OUT (.svg, .png, .dot)")
    explain.add_argument("--digits", type=int, default=4, help="significant digits shown (default 4)")


def _add_check(commands: argparse._SubParsersAction, expr_help: str) -> None:
    """`gradc check`: gradients against finite differences."""
    check = commands.add_parser(
        "check", formatter_class=_FORMAT, help="compare gradients with finite differences (exit 1 over --tol)",
        description="""Compare gradc's gradients with central finite differences (float64, step
1e-6*max(1, |x|)) at random points, and print the max relative error per parameter (spec) or
argument (expressions): max|g - fd| / max(|g|, |fd|) over the checked entries. Exit status 1 if
any error exceeds --tol, else 0.

spec: parameters from init_params (a new seed per point, biases drawn from N(0, 0.1^2)), X ~ N(0, 1)
with --batch rows; Y one-hot for softmax_cross_entropy/hinge, in (0, 1) otherwise. Parameters with
more than 64 entries are checked on 64 random entries per point. float32 specs are checked through
their float64 twin.
expressions: points uniform in [--low, --high] in every argument; points where the value or a
gradient is not finite (outside the domain) are skipped.""",
        epilog=f"""examples:
  gradc check net.yaml
  gradc check net.yaml --points 20 --seed 1 --tol 1e-7
  gradc check --expr "log(x)*y" --low 0.1 --high 2
  gradc check --expr "x*y" --expr "sin(x)"     # checks a random weighted sum of the outputs

{expr_help}""")
    _add_source(check)
    check.add_argument("--points", type=int, default=5, help="random points to check at (default 5)")
    check.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    check.add_argument("--tol", type=float, default=1e-6, help="max relative error allowed (default 1e-6)")
    check.add_argument("--batch", type=int, default=4, help="spec: rows of X per point (default 4)")
    check.add_argument("--low", type=float, default=-1.0, help="expressions: lowest coordinate (default -1)")
    check.add_argument("--high", type=float, default=1.0, help="expressions: highest coordinate (default 1)")


def _add_bench(commands: argparse._SubParsersAction) -> None:
    """`gradc bench`: time a training step against hand-written NumPy and the peers."""
    bench = commands.add_parser(
        "bench", formatter_class=_FORMAT, help="time a training step: gradc vs hand-written NumPy and peers",
        description="""Time one training step (loss + every parameter gradient) of an MLP spec: gradc's
loss_and_grad vs a hand-written NumPy backprop (the reference), plus the installed peers: torch
(eager autograd), JAX (jit(value_and_grad), x64), autograd and PyTensor (C and Numba modes); missing
ones are skipped with a note. Each contestant's loss and gradients are checked against the reference
first (rtol 1e-6 in float64, 1e-3 in float32). The contestants are then timed in turns, blocks of about
3 repeats each after a short pause, as benchmarks/run.py times them. Prints milliseconds per step
(median of --repeat repeats after --warmup calls) and the ratio to hand NumPy, then gradc's cold
compile time (empty cache: codegen + Numba compile + first call) and warm load time (Numba's cache
filled), each in a fresh process, and the generated code's op counts.""",
        epilog="""examples:
  gradc bench net.yaml
  gradc bench net.yaml --batch 128 --repeat 50 --warmup 5 --peers torch,jax
  gradc bench net.yaml --peers none --json bench.json""")
    bench.add_argument("spec", metavar="SPEC", help="MLP spec file (" + ", ".join(SPEC_SUFFIXES) + ")")
    bench.add_argument("--batch", type=int, default=64, help="rows of X per step (default 64)")
    bench.add_argument("--repeat", type=int, default=20, help="timed repeats; the median is shown (default 20)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the parameters and batch (default 0)")
    bench.add_argument("--peers", default="all", metavar="LIST",
                       help="comma-separated peers (torch, jax, autograd, pytensor_c, pytensor_numba), "
                            "'all' (default) or 'none'")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    bench.add_argument("--json", metavar="FILE",
                       help="also write the full report (each contestant's median, spread, samples) as JSON")


def _add_warmup(commands: argparse._SubParsersAction) -> None:
    """`gradc warmup`: fill this machine's cache with the code every module shares."""
    warmup = commands.add_parser(
        "warmup", formatter_class=_FORMAT, help="compile the code every module shares, once for this machine",
        description="""Compile the support code that every model compiled in-process shares (vector math,
BLAS binding, losses, optimisers, the built-in activations' loops) and cache it on disk ($GRADC_CACHE_DIR,
else ~/.cache/gradc), by running small models of each kind through every entry point. Afterwards a new
model compiles only its own kernels. Takes 1-2 minutes once; a second run only loads the cache.""",
        epilog="""examples:
  gradc warmup
  gradc warmup --dtype float64
  GRADC_CACHE_DIR=/shared/cache gradc warmup""")
    warmup.add_argument("--dtype", choices=("float64", "float32", "all"), default="all",
                        help="warm the code for one dtype only (default: both)")
    warmup.add_argument("--quiet", action="store_true", help="print only the total")


def _add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", nargs="?", metavar="SPEC",
                        help="MLP spec file (" + ", ".join(SPEC_SUFFIXES) + "); or use --expr")
    parser.add_argument("--expr", action="append", metavar="EXPR", default=None,
                        help="an expression in SymPy syntax (repeat for several outputs of one kernel)")
    parser.add_argument("--args", metavar="x,y", help="expressions: argument order (default: the free "
                        "symbols sorted by name)")
    parser.add_argument("--wrt", metavar="x,y", help="expressions: arguments to differentiate (default: all)")
    parser.add_argument("--name", help="name of the function (expressions, default f) or of the network "
                        "(spec); made a safe identifier")
    parser.add_argument("--dtype", choices=("float32", "float64"),
                        help="expressions: default float64; spec: overrides the spec's dtype")


# ------------------------------------------------------------------------------------------ commands


def _output_path(text: str) -> Path:
    path = Path(text)
    if path.suffix != ".py":
        raise UsageError(f"-o/--output must end in .py, got {text!r}")
    if path.is_dir():
        raise UsageError(f"-o/--output is a directory: {text}")
    return path


def cmd_compile(ns: argparse.Namespace) -> int:
    output = _output_path(ns.output)
    source = load_source(ns)
    module = source.compile()
    shadowed = imports(module.source)
    if output.stem in shadowed:
        raise UsageError(f"-o/--output: {output.name!r} would shadow the module {output.stem!r} that the "
                         "generated code imports; choose another name")
    try:
        written = module.write(output)
    except OSError as exc:
        raise GradcError(f"cannot write {output}: {exc.strerror or exc}") from exc
    lines = module.source.count("\n") + 1
    print(f"wrote {written} ({lines} lines, needs only numpy + numba): {source.title}")
    print(*(describe_mlp(module) if source.spec is not None else describe_expr(module)), sep="\n")
    stem = written.stem
    if stem.isidentifier() and not keyword.iskeyword(stem):
        first = "loss_and_grad" if source.spec is not None else "value_and_grad"
        print(f"use: from {stem} import {first}   (or gradc.load({str(written)!r}))")
    else:
        print(f"use: gradc.load({str(written)!r})   ({stem!r} is not an importable module name)")
    return 0


def _color(ns: argparse.Namespace) -> bool:
    if ns.no_color or os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return False
    try:
        import pygments  # noqa: F401
    except ImportError:
        return False
    return True


def cmd_show(ns: argparse.Namespace) -> int:
    if ns.measure and not ns.cost:
        raise UsageError("--measure applies to --cost only")
    if ns.cost:
        source = load_source(ns)
        if ns.batch < 1:
            raise UsageError(f"--batch must be >= 1, got {ns.batch}")
        module = source.compile()
        report = module.cost(batch=ns.batch, measure=ns.measure) if source.spec is not None else \
            module.cost(measure=ns.measure)
        print(report)
        return 0
    text = load_source(ns).compile().source
    if _color(ns):
        from pygments import highlight
        from pygments.formatters import TerminalFormatter
        from pygments.lexers import PythonLexer

        text = highlight(text, PythonLexer(), TerminalFormatter())
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_check(ns: argparse.Namespace) -> int:
    from gradc.tools.check import check_expr, check_mlp

    source = load_source(ns)
    options = {"points": ns.points, "seed": ns.seed, "tol": ns.tol}
    if source.spec is not None:
        if ns.batch < 1:
            raise UsageError(f"--batch must be >= 1, got {ns.batch}")
        report = check_mlp(source.spec, batch=ns.batch, **options)
    else:
        if not ns.low < ns.high:
            raise UsageError(f"--low must be below --high, got {ns.low:g} and {ns.high:g}")
        report = check_expr(source.exprs, source.args, source.wrt, name=source.name, dtype=source.dtype,
                            low=ns.low, high=ns.high, **options)
    print(f"gradient check: {source.title}")
    print(report.format_table())
    return 0 if report.ok else 1


def cmd_bench(ns: argparse.Namespace) -> int:
    from gradc.tools.bench import PEERS, bench_mlp

    ns.expr, ns.args, ns.wrt, ns.name, ns.dtype = None, None, None, None, None
    source = load_source(ns)
    choice = ns.peers.strip().lower()
    peers = list(PEERS) if choice == "all" else [] if choice in ("none", "") else names(ns.peers, "--peers")
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise UsageError(f"--peers: unknown peer {unknown[0]!r} (known: {', '.join(PEERS)}, all, none)")
    json_path = Path(ns.json) if ns.json else None
    if json_path is not None and json_path.is_dir():
        raise UsageError(f"--json: {ns.json} is a directory")
    report = bench_mlp(source.spec, batch=ns.batch, repeat=ns.repeat, warmup=ns.warmup, seed=ns.seed,
                       peers=peers, progress=False if ns.no_progress else None)
    print(report.format_table())
    if json_path is not None:
        from gradc.jit import write_atomic

        try:
            write_atomic(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
        except OSError as exc:
            raise GradcError(f"cannot write {json_path}: {exc.strerror or exc}") from exc
        print(f"wrote {json_path}")
    return 0


def cmd_warmup(ns: argparse.Namespace) -> int:
    from gradc.jit import cache_dir
    from gradc.tools.warmup import warmup

    dtypes = ("float64", "float32") if ns.dtype == "all" else (ns.dtype,)
    seconds = warmup(dtypes, report=None if ns.quiet else print)
    print(f"warmed gradc's shared code for {', '.join(dtypes)} in {seconds:.1f} s (cache: {cache_dir()})")
    return 0


def cmd_explain(ns: argparse.Namespace) -> int:
    from gradc.tools.explain import explain_source

    if ns.digits < 1:
        raise UsageError(f"--digits must be >= 1, got {ns.digits}")
    output = Path(ns.output) if ns.output else None
    if output is not None and output.suffix.lower() not in (".svg", ".png", ".dot", ".gv"):
        raise UsageError(f"-o/--output must end in .svg, .png, .dot or .gv, got {ns.output!r}")
    explanation = explain_source(load_source(ns), ns.at, ns.at_batch)
    print(explanation.table(digits=ns.digits))
    if output is not None:
        try:
            explanation.write(output)
        except OSError as exc:
            raise GradcError(f"cannot write {output}: {exc.strerror or exc}") from exc
        print(f"wrote {output}")
    return 0


COMMANDS = {"compile": cmd_compile, "show": cmd_show, "check": cmd_check, "bench": cmd_bench,
            "warmup": cmd_warmup, "explain": cmd_explain}


def _one_line(message: str) -> str:
    """Multi-line messages (YAML parser errors) joined into one line; caret-only lines dropped."""
    lines = [line.strip() for line in str(message).splitlines()]
    return "; ".join(line for line in lines if line.strip("^ ")) or "unknown error"


def main(argv: Sequence[str] | None = None) -> int:
    """Run `gradc` with `argv` (default: sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
        if ns.command is None:
            raise UsageError(f"missing command ({', '.join(COMMANDS)}); see '{PROG} --help'")
        return COMMANDS[ns.command](ns)
    except SystemExit as exc:   # --help and --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except GradcError as exc:
        print(f"{PROG}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # `gradc show ... | head`: the reader left; say nothing more
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"{PROG}: error: {where}{_one_line(exc.strerror or str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
