"""The layout of circuit pictures: boxes and wires placed in columns, longest path first.

A `Diagram` is what the lecture notes draw: boxes (inputs, gates, an output end) joined by wires,
each wire with a text above it (the forward value, or a shape) and a text below it (the adjoint that
flows back along it). `layout` places it (Sugiyama's layered scheme, kept small: a wire spanning several
columns bends through waypoints, each column is ordered by its neighbours' barycentres, then boxes are
pulled level with their neighbours), and gives each wire straight runs where its labels sit.
tools/circuit.py draws the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VALUE_COLOR = "#1a7f37"      # forward values: green, as in the notes
ADJOINT_COLOR = "#c0362c"    # adjoints: red
CHAR_W = 7.4                 # width of one character of the 12px monospace labels
ROW_GAP = 84                 # vertical distance between the centres of neighbouring boxes


@dataclass
class Box:
    """One node: `kind` is "input", "gate", "end" (where the output leaves) or "param"; `symbol` is
    drawn inside (a gate's op), `name` beside it, `note` (a fan-out's total adjoint) under the name."""

    key: str
    symbol: str
    name: str = ""
    kind: str = "gate"
    note: str = ""
    width: float = 0.0
    height: float = 0.0
    trunk: bool = False      # its value leaves on a trunk that splits (its note is written under the trunk)
    x: float = 0.0
    y: float = 0.0


@dataclass
class Wire:
    """A value flowing from `src` to `dst`: `above` (its value or shape), `below` (its adjoint);
    `fanout` marks a value read by more than one gate (its adjoint is a sum of `+=` parts)."""

    src: str
    dst: str
    above: str = ""
    below: str = ""
    fanout: bool = False
    points: list[tuple[float, float]] = field(default_factory=list)
    head: float = 0.0        # straight run where the wire leaves its box (its labels sit on it)
    tail: float = 0.0        # straight run where it enters its gate (a fan-out branch's `+=` part)
    trunk: bool = False      # one of several wires leaving one box: they share the run, then split


@dataclass
class Diagram:
    """Boxes and wires, with a title; `layout()` fills in positions and the picture's size."""

    boxes: list[Box]
    wires: list[Wire]
    title: str = ""
    width: float = 0.0
    height: float = 0.0

    def box(self, key: str) -> Box:
        """The box called `key`."""
        index = self.__dict__.get("_index")
        if index is None or len(index) != len(self.boxes):
            index = self.__dict__["_index"] = {b.key: b for b in self.boxes}
        return index[key]


# ---------------------------------------------------------------------------------------------- layout


def _size(box: Box) -> None:
    """A gate with a short symbol is a circle (width = height); anything else a rounded box."""
    if box.kind == "end":
        box.width = box.height = 8.0
    elif box.kind == "gate" and len(box.symbol) <= 3:
        box.width = box.height = 40.0
    else:
        box.width, box.height = max(40.0, CHAR_W * 1.15 * len(box.symbol) + 18), 32.0


def _columns(d: Diagram) -> dict[str, int]:
    """Each box's column: gates one right of their rightmost input; inputs one left of their first reader."""
    inputs: dict[str, list[str]] = {b.key: [] for b in d.boxes}
    readers: dict[str, list[str]] = {b.key: [] for b in d.boxes}
    for w in d.wires:
        inputs[w.dst].append(w.src)
        readers[w.src].append(w.dst)
    col: dict[str, int] = {}
    for b in d.boxes:   # longest path from the sources, depth first without recursion (chains may be long)
        stack = [] if _is_source(d, b.key) else [b.key]
        while stack:
            key = stack[-1]
            todo = [s for s in inputs[key] if s not in col and not _is_source(d, s)]
            if key in col or todo:
                stack.pop() if key in col else stack.extend(todo)
                continue
            col[key] = 1 + max((col[s] for s in inputs[key] if not _is_source(d, s)), default=0)
            stack.pop()
    for b in d.boxes:
        if _is_source(d, b.key):
            col[b.key] = min((col[r] for r in readers[b.key]), default=1) - 1
    return col


def _is_source(d: Diagram, key: str) -> bool:
    return d.box(key).kind in ("input", "param")


def layout(d: Diagram) -> Diagram:
    """Place every box and route every wire (in place); returns `d`."""
    for b in d.boxes:
        _size(b)
    col = _columns(d)
    n_cols = max(col.values(), default=0) + 1
    # waypoints: a wire spanning k columns passes through k - 1 invisible points
    rows: list[list[str]] = [[] for _ in range(n_cols)]
    for b in d.boxes:
        rows[col[b.key]].append(b.key)
    chains: list[list[str]] = []
    for k, w in enumerate(d.wires):
        chain = [w.src] + [f"~{k}.{c}" for c in range(col[w.src] + 1, col[w.dst])] + [w.dst]
        for c, key in zip(range(col[w.src] + 1, col[w.dst]), chain[1:-1]):
            rows[c].append(key)
        chains.append(chain)
    left: dict[str, list[str]] = {}
    right: dict[str, list[str]] = {}
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            right.setdefault(a, []).append(b)
            left.setdefault(b, []).append(a)
    _order(rows, left, right)
    y = _rows_y(rows, left, right, rounds=24 if sum(map(len, rows)) < 2000 else 6)
    _runs(d)
    x = _columns_x(d, rows, col)
    for b in d.boxes:
        b.x, b.y = x[col[b.key]], y[b.key]
    for w, chain in zip(d.wires, chains):
        src, dst = d.box(w.src), d.box(w.dst)
        mids = [(x[col[w.src] + 1 + k], y[key]) for k, key in enumerate(chain[1:-1])]
        w.points = [(src.x + src.width / 2, src.y), *mids, (dst.x - dst.width / 2, dst.y)]
    for k, dy in _ports(d).items():
        (xe, ye), dst = d.wires[k].points[-1], d.box(d.wires[k].dst)
        if dst.width == dst.height:   # a circle: the port stays on its rim
            r = dst.width / 2
            xe = dst.x - (max(r * r - dy * dy, 0.0)) ** 0.5
        d.wires[k].points[-1] = (xe, ye + dy)
    top = min((b.y - b.height / 2 for b in d.boxes), default=0) - 40
    for b in d.boxes:
        b.y -= top
    for w in d.wires:
        w.points = [(px, py - top) for px, py in w.points]
    d.width = max(max((b.x + b.width / 2 for b in d.boxes), default=0) + 40, len(d.title) * CHAR_W * 1.1 + 32)
    d.height = max((b.y + b.height / 2 for b in d.boxes), default=0) + 50
    return d


def _order(rows: list[list[str]], left: dict, right: dict, sweeps: int = 8) -> None:
    """Order each column by the mean position of its neighbours (barycentres), sweeping both ways."""
    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        cols = range(1, len(rows)) if forward else range(len(rows) - 2, -1, -1)
        for c in cols:
            ref = rows[c - 1] if forward else rows[c + 1]
            pos = {k: i for i, k in enumerate(ref)}
            nbrs = left if forward else right
            own = {k: i for i, k in enumerate(rows[c])}
            rows[c].sort(key=lambda k, pos=pos, nbrs=nbrs, own=own: (_centre(k, pos, nbrs, own), own[k]))


def _centre(key: str, pos: dict[str, int], nbrs: dict[str, list[str]], own: dict[str, int]) -> float:
    """The mean position of `key`'s neighbours in the reference column (its own position if it has none)."""
    ps = [pos[n] for n in nbrs.get(key, []) if n in pos]
    return sum(ps) / len(ps) if ps else own[key]


def _rows_y(rows: list[list[str]], left: dict, right: dict, rounds: int = 24) -> dict[str, float]:
    """Vertical positions: start evenly spaced, then pull each box towards its neighbours' mean while
    keeping the column's order and ROW_GAP between neighbours (waypoints need less room)."""
    y = {k: i * ROW_GAP for row in rows for i, k in enumerate(row)}

    def gap(a: str, b: str) -> float:
        return ROW_GAP * (0.55 if a.startswith("~") and b.startswith("~") else 1.0)

    for r in range(rounds):
        cols = range(len(rows)) if r % 2 == 0 else range(len(rows) - 1, -1, -1)
        for c in cols:
            row = rows[c]
            if not row:
                continue
            want = []
            for k in row:
                ns = left.get(k, []) + right.get(k, [])
                want.append(sum(y[n] for n in ns) / len(ns) if ns else y[k])
            placed = [want[0]]
            for i in range(1, len(row)):
                placed.append(max(want[i], placed[-1] + gap(row[i - 1], row[i])))
            shift = sum(w - p for w, p in zip(want, placed)) / len(row)   # keep the column centred on its wants
            for k, p in zip(row, placed):
                y[k] = p + shift
    return y


def _columns_x(d: Diagram, rows: list[list[str]], col: dict[str, int]) -> list[float]:
    """The x of each column's centre: room for its boxes, the straight runs that carry the labels of the
    wires leaving it and entering the next, and a curve between them."""
    widths = [max((d.box(k).width for k in row if not k.startswith("~")), default=0.0) for row in rows]
    leave = [0.0] * len(rows)
    enter = [0.0] * len(rows)
    for w in d.wires:
        leave[col[w.src]] = max(leave[col[w.src]], w.head)
        enter[col[w.dst]] = max(enter[col[w.dst]], w.tail)
    xs, x = [], 40.0
    for c, width in enumerate(widths):
        x += width / 2
        xs.append(x)
        x += width / 2 + leave[c] + (enter[c + 1] if c + 1 < len(rows) else 0.0) + 44.0
    return xs


def _runs(d: Diagram) -> None:
    """The straight runs that carry wire labels: a value read once is labelled where it leaves its box;
    a value read by several gates leaves on one trunk (its value above, the summed adjoint below) that
    splits at a junction, and each branch's `+=` part is written where it enters its gate."""
    leaving: dict[str, list[Wire]] = {}
    for w in d.wires:
        leaving.setdefault(w.src, []).append(w)
    for src, ws in leaving.items():
        note = d.box(src).note
        if len(ws) == 1:
            ws[0].head = max(len(ws[0].above), len(ws[0].below)) * CHAR_W + 16
            continue
        head = max(len(ws[0].above), len(note)) * CHAR_W + 16
        d.box(src).trunk = True
        for w in ws:
            w.head, w.tail, w.trunk = head, len(w.below) * CHAR_W + 14, True


def _ports(d: Diagram) -> dict[int, float]:
    """Each wire's vertical offset where it enters its gate: a gate's inputs spread over its left side."""
    entering: dict[str, list[int]] = {}
    for k, w in enumerate(d.wires):
        entering.setdefault(w.dst, []).append(k)
    offsets = {}
    for ks in entering.values():
        ks.sort(key=lambda k: d.wires[k].points[-2][1] if len(d.wires[k].points) > 1 else 0.0)
        for i, k in enumerate(ks):
            offsets[k] = (i - (len(ks) - 1) / 2) * 12.0
    return offsets


def segments(w: Wire) -> list[tuple[str, list[tuple[float, float]]]]:
    """The wire as drawing commands: ("L", [point]) straight, ("C", [c1, c2, point]) a cubic curve
    leaving and entering horizontally; the first point is `w.points[0]`."""
    (x0, y0), (xe, ye) = w.points[0], w.points[-1]
    pts = [(x0 + w.head, y0), *w.points[1:-1], (xe - w.tail, ye)]
    out: list[tuple[str, list[tuple[float, float]]]] = [("L", [pts[0]])]
    for (ax, ay), (bx, by) in zip(pts, pts[1:]):
        mx = (ax + bx) / 2
        out.append(("C", [(mx, ay), (mx, by), (bx, by)]))
    if w.tail:   # (a zero-length last stretch would leave the arrowhead without a direction)
        out.append(("L", [(xe, ye)]))
    return out


def labels(d: Diagram) -> list[tuple[float, float, str, str]]:
    """(x, y, text, colour) of every wire label: values above the runs in green, adjoints beneath in red."""
    out, done = [], set()
    for w in d.wires:
        (x0, y0), (xe, ye) = w.points[0], w.points[-1]
        if not w.trunk:
            out += [(x0 + w.head / 2, y0 - 6, w.above, VALUE_COLOR), (x0 + w.head / 2, y0 + 16, w.below, ADJOINT_COLOR)]
            continue
        if w.src not in done:
            done.add(w.src)
            out += [(x0 + w.head / 2, y0 - 6, w.above, VALUE_COLOR),
                    (x0 + w.head / 2, y0 + 16, d.box(w.src).note, ADJOINT_COLOR)]
        below = ye >= d.box(w.dst).y   # the lower input of a gate is labelled under its run, the upper above
        out.append((xe - w.tail / 2, ye + (16 if below else -6), w.below, ADJOINT_COLOR))
    return [label for label in out if label[2]]
