"""MLP programs -> a standalone module: one njit function per entry point (no Python between
layers), BLAS products with transposed operands instead of transposed copies, and one fused loop
per activation that returns the activation and its derivative together."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from gradc.backend.names import Namer, comment
from gradc.backend.printer import (
    Naming,
    Printer,
    debug_message,
    header,
    literal,
    module_source,
    plan_names,
    runtime_source,
    statements,
    used_runtime,
    vectorises,
)
from gradc.core import ir
from gradc.core.ir import Node
from gradc.core.program import Meta, Program
from gradc.frontend.mlp import Activation, activations

_DECORATOR = '@nb.njit(cache=True, error_model="numpy", nogil=True)'


def _activation_helpers(act: Activation, split: bool) -> list[str]:
    """`_act_x(z)` -> h and `_act_x_both(z)` -> (h, h'), each one loop over the flattened array. Where
    the module's loops may `split` across threads, `_act_x_both` calls `_act_x_gate(z_k)` -> (h, h') at
    each point from a loop over threads or from a plain one (see _split)."""
    z = act.h.graph.input("z")
    naming = plan_names([act.h], [act.dh], Namer(), act.program.meta, {id(z): "z_k"}, {})

    def body(outputs: Sequence[Node], indent: str) -> tuple[list[str], list[str]]:
        """The statements computing `outputs` at one point, and the outputs' texts."""
        order = ir.topological_order(list(outputs))
        vector = vectorises(order)
        printer = Printer(naming, vector)
        return ([indent + s for s in statements(order, naming, vector=vector)],
                [printer.text(node) for node in outputs])

    head = ["    flat = z.reshape(z.size)", "    h = np.empty_like(flat)"]
    loop = ["    for k in range(flat.shape[0]):", "        z_k = flat[k]"]
    forward, (h,) = body([act.h], "        ")
    lines = [
        _DECORATOR,
        f"def {act.helper}(z):",
        '    """The activation, elementwise."""',
        f"    # h = {comment(act.formula)}",
        *head, *loop, *forward, f"        h[k] = {h}",
        "    return h.reshape(z.shape)",
        "", "",
    ]
    both_head = [*head, "    dh = np.empty_like(flat)"]
    both_return = "    return h.reshape(z.shape), dh.reshape(z.shape)"
    if not split:
        both, (h_k, dh_k) = body([act.h, act.dh], "        ")
        return [*lines, _DECORATOR, f"def {act.helper}_both(z):",
                '    """(h, dh/dz) in one pass: the derivative reuses the forward values."""',
                *both_head, *loop, *both, f"        h[k] = {h_k}", f"        dh[k] = {dh_k}", both_return]
    both, (h_k, dh_k) = body([act.h, act.dh], "    ")
    gate = f"{act.helper}_gate"
    at_k = f"h[k], dh[k] = {gate}(flat[k])"
    return [
        *lines,
        '@nb.njit(cache=True, error_model="numpy", forceinline=True)',
        f"def {gate}(z_k):",
        '    """(h, dh/dz) at one point: the derivative reuses the forward values."""',
        *both, f"    return {h_k}, {dh_k}",
        "", "",
        '@nb.njit(cache=True, error_model="numpy", nogil=True, parallel=_PARALLEL)',
        f"def {act.helper}_both(z):",
        '    """(h, dh/dz) over the array in one pass; split across threads when it is large (see _split)."""',
        *both_head,
        "    if _split(flat.size):", "        for k in nb.prange(flat.shape[0]):", f"            {at_k}",
        "    else:", "        for k in range(flat.shape[0]):", f"            {at_k}",
        both_return,
    ]


def _fuse_activations(order: Sequence[Node], naming: Naming) -> tuple[dict[int, str], set[int]]:
    """Statements that compute an activation and its derivative together; the derivative nodes they
    cover (which then get no statement of their own)."""
    derivs = {(id(n.inputs[0]), n.attr("fn")): n for n in order if n.op == "act_deriv"}
    fused: dict[int, str] = {}
    covered: set[int] = set()
    for node in order:
        d = derivs.get((id(node.inputs[0]), node.attr("fn"))) if node.op == "act" else None
        if d is not None:
            h, dh, z = naming.names[id(node)], naming.names[id(d)], naming.names[id(node.inputs[0])]
            label = naming.meta.describe(node)
            fused[id(node)] = f"{h}, {dh} = {node.attr('fn').helper}_both({z})  # {label} and its derivative"
            covered.add(id(d))
    return fused, covered


#: the runtime files (gradc/runtime/) a written MLP module draws its support code from, in their order there
RUNTIMES = ("vector_math", "special", "blas", "threads", "mlp", "losses", "train", "heap")


def _check(node: Node, name: str, meta: Meta, where: str = "") -> str:
    return f"_check_finite({name}, {debug_message(node, name, meta, where)})"


class _Network:
    """What the MLP backend reads of a program: the spec it came from, the parameters by name (its `wrt`),
    X and Y, the last layer's activations and the loss (its outputs), the activation helpers."""

    def __init__(self, program: Program):
        self.spec = program.origin
        self.meta = program.meta
        self.params = {x.name: x for x in program.wrt}
        self.X, self.Y = program.input("X"), program.input("Y")
        self.output, self.loss = program.outputs
        self.grads = program.grads
        self.activations = activations(program)
        self.inits = self.spec.param_inits()


def _in_place(order: Sequence[Node], naming: Naming, results: Sequence[Node]) -> dict[int, str]:
    """Nodes computed into their first operand's buffer, and the helper that does it: a bias added to
    the fresh product it follows (`_add_bias(_matmul(X, W1), b1)`), and an activation's adjoint times its
    derivative written over that adjoint (`_times_into(d_h1, dh1)`) when nothing else reads the
    adjoint. Why: a step's other fresh buffers are cold in cache, and filling one costs a pass of
    memory traffic, several times what the same multiply costs into a buffer that is already hot."""
    readers = ir.use_counts(order)
    for x in results:   # a returned value is read too
        readers[id(x)] = readers.get(id(x), 0) + 1
    chosen = {}
    for node in order:
        if id(node) not in naming.names or id(node) in naming.accumulates or len(node.inputs) != 2:
            continue
        first, second = node.inputs
        if first.is_leaf or readers[id(first)] != 1:   # not a fresh array read only here
            continue
        if node.op == "add" and first.op == "matmul" and second.is_input and len(second.shape) == 1:
            chosen[id(node)] = "_add_bias"
        elif node.op == "mul" and second.op == "act_deriv":
            chosen[id(node)] = "_times_into"
    return chosen


class _TypedPrinter(Printer):
    """Constants as `np.float32(c)` in float32 programs: Numba types `0.01 * W` as float64, which
    would turn float32 gradients into float64 ones (and break BLAS products that mix the two).
    Nodes in `in_place` are printed as their helper's call (see `_in_place`)."""

    def __init__(self, naming: Naming, in_place: dict[int, str]):
        super().__init__(naming)
        self.in_place = in_place

    def expr(self, node: Node) -> tuple[str, int]:
        if node.is_const and node.dtype == "float32" and id(node) not in self.naming.names:
            return f"np.float32({literal(node.value)})", 100
        return super().expr(node)

    def definition(self, node: Node) -> tuple[str, int]:
        helper = self.in_place.get(id(node))
        if helper is None:
            return super().definition(node)
        return f"{helper}({self.text(node.inputs[0])}, {self.text(node.inputs[1])})", 100


def _wrapped(opening: str, items: list[str], closing: str, sep: str = ", ", width: int = 110) -> str:
    """`opening` + items joined by `sep` + `closing`, broken between items into lines of at most `width`,
    continued under the first item."""
    lines, line = [], opening
    for k, item in enumerate(items):
        piece = item + (sep if k < len(items) - 1 else closing)
        if len(line) + len(piece.rstrip()) > width and line != opening:
            lines.append(line.rstrip())
            line = " " * len(opening)
        line += piece
    return "\n".join([*lines, line])


def _shape_guard(params: list[str], p: _Network) -> list[str]:
    """The kernel's first statement: a ValueError unless every array has its shape (the dispatcher has
    checked dtypes, ranks and layouts; the public functions catch this and say which array is wrong)."""
    tests = [f"X.shape[1] == {p.spec.input}"]
    if "Y" in params:   # a loss is a mean over the batch: N >= 1
        tests = ["X.shape[0] >= 1", *tests, "Y.shape[0] == X.shape[0]", f"Y.shape[1] == {p.spec.layers[-1].units}"]
    tests += [f"{k}.shape == {tuple(n.shape)!r}" for k, n in p.params.items()]
    return [*_wrapped("    if not (", tests, "):", " and ").split("\n"),
            '        raise ValueError("an array\'s shape does not fit the network")']


def _plan(outputs: list[Node], backward: list[Node], p: _Network) -> tuple[list[Node], Naming]:
    """The statements' order (backward from the last layer) and the names of the values they compute."""
    inputs = {id(p.X): "X", id(p.Y): "Y", **{id(n): k for k, n in p.params.items()}}
    namer = Namer({"X", "Y", *p.params, *(a.helper for a in p.activations)})
    naming = plan_names(outputs, backward, namer, p.meta, inputs, {}, stage_all=False)
    order = ir.topological_order([*outputs, *reversed(backward)])
    for node in order:   # an activation's derivative is computed with it, so it needs a name
        if node.op == "act_deriv" and id(node) not in naming.names:
            naming.names[id(node)] = namer.fresh(f"d{naming.names[id(node.inputs[0])].replace('z', 'h', 1)}")
    return order, naming


def _function(name: str, doc: str, params: list[str], outputs: list[Node], backward: list[Node],
              p: _Network, debug: bool) -> list[str]:
    order, naming = _plan(outputs, backward, p)
    fused, covered = _fuse_activations(order, naming)
    printer = _TypedPrinter(naming, _in_place(order, naming, [*outputs, *backward]))
    body = []
    forward_ids = {id(n) for n in ir.topological_order(outputs)}
    for node in order:
        if node.is_leaf or id(node) not in naming.names or id(node) in covered:
            continue
        if backward and id(node) not in forward_ids and not any(b.startswith("# backward") for b in body):
            body.append("# backward: adjoints of the loss")
        body.append(fused.get(id(node)) or printer.statement(node))
        if debug:
            body.append(_check(node, naming.names[id(node)], p.meta))
            if id(node) in fused:
                d = next(n for n in order if id(n) in covered and n.inputs[0] is node.inputs[0])
                where = p.meta.describe(d) or f"derivative of {p.meta.describe(node)}"
                body.append(_check(d, naming.names[id(d)], p.meta, where))
    values = [printer.text(n) for n in [*outputs, *backward]]
    return [_DECORATOR, f"def {name}({', '.join(params)}):", f'    """{doc}"""', *_shape_guard(params, p),
            *("    " + line for line in body), f"    return {', '.join(values)}"]


def _training_kernels(p: _Network) -> str:
    """`_step` (one optimiser step: the gradient, then each parameter's update) and `_epoch` (every
    mini-batch step of an epoch, shuffled in compiled code), around `_loss_and_grad`; the update rules are
    the runtime's (gradc/runtime/train.py)."""
    names = list(p.params)
    arrays = [*names, *(f"m_{k}" for k in names), *(f"v_{k}" for k in names)]
    updates = [f"    _update_{'matrix' if len(p.params[k].shape) == 2 else 'vector'}({k}, d_{k}, m_{k}, v_{k}, rule, t)"
               for k in names]
    step_params = _wrapped("def _step(", ["X", "Y", *arrays, "rule", "t"], "):")
    epoch_params = _wrapped("def _epoch(", ["X", "Y", *arrays, "rule", "t", "batch_size", "shuffle", "seed"], "):")
    call = f" = _loss_and_grad(X, Y, {', '.join(names)})"
    gradient = f"    value, {', '.join(f'd_{k}' for k in names)}{call}"
    if len(gradient) > 110:
        gradient = _wrapped("    (", ["value", *(f"d_{k}" for k in names)], ")" + call)
    batch = ["_take_rows(X, rows)", "_take_rows(Y, rows)", *arrays, "rule", "t"]
    step_call = _wrapped("        total += rows.shape[0] * _step(", batch, ")")
    return "\n".join([
        _DECORATOR, step_params,
        '    """One optimiser step at step t (1-based), in place: the loss before it."""',
        gradient, *updates, "    return value", "", "",
        _DECORATOR, epoch_params,
        '    """One epoch in place: steps t + 1, t + 2, ... over mini-batches of batch_size rows (in an order',
        '    shuffled from seed when shuffle); the mean of the steps\' losses, weighted by their rows."""',
        "    order = np.arange(X.shape[0])",
        "    if shuffle:", "        np.random.seed(seed)", "        np.random.shuffle(order)",
        "    total = 0.0",
        "    for start in range(0, X.shape[0], batch_size):",
        "        rows = order[start:start + batch_size]",
        "        t += 1",
        step_call,
        "    return total / X.shape[0]",
    ])


def _constants(p: _Network) -> str:
    """The module's constants, which its public functions and the runtime's read."""
    labels_ok = p.spec.loss in ("softmax_cross_entropy", "hinge")
    shapes = ", ".join(f"{k!r}: {tuple(n.shape)!r}" for k, n in p.params.items())
    return "\n".join([
        f"PARAM_SHAPES = {{{shapes}}}",
        f"PARAM_INITS = {p.inits!r}",
        f"INPUT, OUTPUT = {p.spec.input}, {p.spec.layers[-1].units}",
        f"LABELS_OK = {labels_ok}   # Y may be integer class labels of shape (N,)",
        f"DTYPE = np.dtype({p.spec.dtype!r})",
        f"LOSS = {p.spec.loss!r}",
        f"NETWORK = {p.spec.network_fingerprint()!r}   # stamped into parameter files (save_params)",
        f"OPTIMIZER = {p.spec.optimizer.to_dict()!r}   # step and fit's default",
    ])


#: public functions of every MLP module whose code is the runtime's (gradc/runtime/mlp.py)
_RUNTIME_API = ("init_params", "forward", "loss", "sgd_step", "init_state", "step", "fit", "predict", "predict_proba",
                "save_params", "load_params")


def _wrappers(p: _Network) -> str:
    """The public function whose code depends on the network: loss_and_grad (the others are the runtime's)."""
    # gradients unpacked by name into a dict display: faster than dict(zip(...)) over a list, which a
    # small step, mostly call overhead, feels
    names = ["value", *(f"d_{k}" for k in p.params)]
    unpack = f"    {', '.join(names)} = out"
    unpack = unpack if len(unpack) <= 110 else _wrapped("    (", names, ") = out")
    # Numba returns the loss as a Python float already (a float32 one too): no float() on the hot path
    grads = _wrapped("    return value, {", [f"{k!r}: d_{k}" for k in p.params], "}")
    same = textwrap.fill(f"{', '.join(_RUNTIME_API[:-1])} and {_RUNTIME_API[-1]} are the same for every network: "
                         "they are in the support code below, and read the constants above.", width=110,
                         initial_indent="# ", subsequent_indent="# ")
    return f'''def loss_and_grad(params, X, Y):
    """(loss, gradients keyed and shaped like params) of a batch."""
    out = _run_rows(_loss_and_grad, params, (X, Y), PARAM_SHAPES, INPUT, OUTPUT, DTYPE, LABELS_OK, LOSS)
{unpack}
{grads}


{same}
'''


#: units from which a layer's elementwise loops are compiled able to split across threads: it costs
#: compile time, and pays only on arrays of runtime_threads' _SPLIT_MIN elements (a batch of 128 at this width)
_PARALLEL_UNITS = 512


def _splits(p: _Network) -> bool:
    """Whether the module's loops are compiled able to split across threads (Numba's parallel=True)."""
    return max(layer.units for layer in p.spec.layers) >= _PARALLEL_UNITS


def _parallel(p: _Network) -> str:
    """The `_PARALLEL` line of a module (see `_splits`)."""
    widest = max(layer.units for layer in p.spec.layers)
    if _splits(p):
        return f"_PARALLEL = True   # layers of {widest} units: large loops may split across threads (see _split)\n"
    return f"_PARALLEL = False   # layers of {widest} units at most: loops run on one thread\n"


def emit_mlp_module(program: Program, source_hash: str, regenerate: str, debug: bool = False) -> str:
    """The standalone module's source text: the header, the constants, the network's kernels, its
    activations' loops and loss_and_grad, then the support code they use (`module_source`)."""
    p = _Network(program)
    names = list(p.params)
    layers = [f"layer {i}: {layer.units} units, {layer.activation}"
              + (f" = {layer.formula}" if layer.activation == "custom" else "")
              + ("" if layer.bias else ", no bias")
              for i, layer in enumerate(p.spec.layers, 1)]
    described = [f"input {p.spec.input}", *layers, f"loss {p.spec.loss}, l2 {p.spec.l2}, {p.spec.dtype}"]
    split = _splits(p)
    kernels = "\n\n\n".join([
        "\n".join(_function("_forward", "X -> the last layer's activations.", ["X", *names], [p.output], [], p,
                            debug)),
        "\n".join(_function("_loss", "(X, Y) -> loss.", ["X", "Y", *names], [p.loss], [], p, debug)),
        "\n".join(_function("_loss_and_grad", "(X, Y) -> (loss, *gradients in PARAM_SHAPES order).",
                            ["X", "Y", *names], [p.loss], p.grads, p, debug)),
        _training_kernels(p),
    ])
    helpers = "\n".join(line for act in p.activations for line in [*_activation_helpers(act, split), "", ""])
    helpers = used_runtime([helpers], kernels)[2]   # the activations' loops the kernels call
    code = "\n\n\n".join(part.strip("\n") for part in [kernels, helpers, _wrappers(p)] if part)
    support = [runtime_source(name) for name in RUNTIMES]
    return module_source(header(f"MLP {p.spec.name}", source_hash, regenerate, described), _constants(p), code,
                         support, roots=_RUNTIME_API, settings=_parallel(p))
