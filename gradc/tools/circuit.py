"""Circuit pictures: a small layered layout of boxes and wires, drawn as SVG, as DOT text, or as PNG.

A `Diagram` is what the lecture notes draw: boxes (inputs, gates, an output end) joined by wires,
each wire with a text above it (the forward value, or a shape) and a text below it (the adjoint that
flows back along it). `layout` places it in columns, longest path first (Sugiyama's scheme, kept
small: a wire spanning several columns bends through waypoints, rows are ordered by barycentres and
then pulled straight); `svg`, `png` and `dot` draw the same placement (DOT leaves its own to Graphviz).
Nothing here needs Graphviz; `png` needs matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

VALUE_COLOR = "#1a7f37"      # forward values: green, as in the notes
ADJOINT_COLOR = "#c0362c"    # adjoints: red
INK, MUTED, FILL, INPUT_FILL = "#24292f", "#6e7781", "#f6f8fa", "#ddf4ff"
CHAR_W = 7.4                 # width of one character of the 12px monospace labels
ROW_GAP = 84                 # vertical distance between the centres of neighbouring boxes
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"


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

    def depth(key: str) -> int:   # gates are few hundred at most, and DAGs: recursion is fine
        if key not in col:
            col[key] = 1 + max((depth(s) for s in inputs[key] if not _is_source(d, s)), default=0)
        return col[key]

    for b in d.boxes:
        if not _is_source(d, b.key):
            depth(b.key)
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
    y = _rows_y(rows, left, right)
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
    d.width = max((b.x + b.width / 2 for b in d.boxes), default=0) + 40
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


def _path(w: Wire) -> str:
    parts = [f"M{w.points[0][0]:.1f},{w.points[0][1]:.1f}"]
    for kind, pts in segments(w):
        parts.append(kind + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts))
    return " ".join(parts)


def _text(x: float, y: float, text: str, color: str = INK, size: int = 12, anchor: str = "middle",
          weight: str = "normal", cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" fill="{color}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}"{c}>{escape(text)}</text>')


def svg(d: Diagram) -> str:
    """The laid-out diagram as a standalone SVG document."""
    if not d.width:
        layout(d)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{d.width:.0f}" height="{d.height:.0f}" '
           f'viewBox="0 0 {d.width:.0f} {d.height:.0f}" font-family="{FONT}">',
           "<style>text{paint-order:stroke;stroke:#ffffff;stroke-width:3px;stroke-linejoin:round}</style>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           f'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{MUTED}"/></marker></defs>',
           '<rect width="100%" height="100%" fill="#ffffff"/>']
    if d.title:
        out.append(_text(16, 22, d.title, anchor="start", size=13, weight="bold"))
    for w in d.wires:
        dash = ' stroke-dasharray="5,3"' if w.fanout else ""
        out.append(f'<path d="{_path(w)}" fill="none" stroke="{MUTED}" stroke-width="1.4"{dash} '
                   f'marker-end="url(#arrow)"/>')
        if w.trunk:
            x, y = w.points[0][0] + w.head, w.points[0][1]
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{ADJOINT_COLOR}"/>')
    for x, y, text, color in labels(d):
        out.append(_text(x, y, text, color, cls="value" if color == VALUE_COLOR else "adjoint"))
    for b in d.boxes:
        out.extend(_svg_box(b))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_box(b: Box) -> list[str]:
    if b.kind == "end":
        return [_text(b.x + 8, b.y + 4, b.name, MUTED, anchor="start")] if b.name else []
    fill = INPUT_FILL if b.kind in ("input", "param") else FILL
    if b.width == b.height:
        shape = f'<circle cx="{b.x:.1f}" cy="{b.y:.1f}" r="{b.width / 2:.1f}" fill="{fill}" stroke="{INK}"/>'
    else:
        shape = (f'<rect x="{b.x - b.width / 2:.1f}" y="{b.y - b.height / 2:.1f}" width="{b.width:.1f}" '
                 f'height="{b.height:.1f}" rx="6" fill="{fill}" stroke="{INK}"/>')
    size = 15 if b.width == b.height else 13
    out = [f'<g class="{b.kind}">', shape, _text(b.x, b.y + size / 3, b.symbol, size=size, weight="bold")]
    if b.name and b.name != b.symbol:
        out.append(_text(b.x, b.y + b.height / 2 + 14, b.name, MUTED, size=11, cls="name"))
    if b.note and not b.trunk:
        out.append(_text(b.x, b.y + b.height / 2 + 28, b.note, ADJOINT_COLOR, size=11, cls="adjoint"))
    return [*out, "</g>"]


# ------------------------------------------------------------------------------------------------- DOT


def _dot_id(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html(text: str) -> str:
    return escape(text, {'"': "&quot;"}) if text else " "


def dot(d: Diagram) -> str:
    """The diagram as Graphviz DOT text (left to right; values above, adjoints below each wire)."""
    lines = ["digraph circuit {", "  rankdir=LR;", '  node [fontname="monospace", fontsize=12];',
             '  edge [fontname="monospace", fontsize=11, arrowsize=0.7];']
    if d.title:
        lines.append(f'  label={_dot_id(d.title)}; labelloc=t;')
    for b in d.boxes:
        if b.kind == "end":
            lines.append(f"  {_dot_id(b.key)} [shape=point, width=0.05];")
            continue
        shape = "box, style=\"rounded,filled\", fillcolor=\"#ddf4ff\"" if b.kind in ("input", "param") else (
            "circle" if len(b.symbol) <= 3 else "box, style=rounded")
        under = "" if not b.name or b.name == b.symbol else f'<br/><font color="{MUTED}" point-size="10">' \
                                                            f"{_html(b.name)}</font>"
        note = f'<br/><font color="{ADJOINT_COLOR}" point-size="10">{_html(b.note)}</font>' if b.note else ""
        lines.append(f"  {_dot_id(b.key)} [shape={shape}, label=<<b>{_html(b.symbol)}</b>{under}{note}>];")
    for w in d.wires:
        label = (f'<<font color="{VALUE_COLOR}">{_html(w.above)}</font><br/>'
                 f'<font color="{ADJOINT_COLOR}">{_html(w.below)}</font>>')
        style = ", style=dashed" if w.fanout else ""
        lines.append(f"  {_dot_id(w.src)} -> {_dot_id(w.dst)} [label={label}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- PNG


def png(d: Diagram, path: str | Path, dpi: int = 144) -> Path:
    """Draw the laid-out diagram with matplotlib (the same placement as `svg`) and save it as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import patches, patheffects
    from matplotlib import pyplot as plt
    from matplotlib.path import Path as MPath

    if not d.width:
        layout(d)
    fig = plt.figure(figsize=(d.width / 100, d.height / 100), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, d.width)
    ax.set_ylim(d.height, 0)
    ax.axis("off")
    halo = [patheffects.withStroke(linewidth=3, foreground="white")]
    font = {"family": "monospace", "fontsize": 8.5}
    if d.title:
        ax.text(16, 22, d.title, fontweight="bold", ha="left", va="baseline", **font)
    for w in d.wires:
        verts, codes = [w.points[0]], [MPath.MOVETO]
        for kind, pts in segments(w):
            verts += pts
            codes += [MPath.LINETO] if kind == "L" else [MPath.CURVE4] * 3
        ax.add_patch(patches.FancyArrowPatch(path=MPath(verts, codes), arrowstyle="-|>", mutation_scale=9,
                                             color=MUTED, lw=1.1, linestyle="--" if w.fanout else "-"))
        if w.trunk:
            ax.add_patch(patches.Circle((w.points[0][0] + w.head, w.points[0][1]), 3.5, color=ADJOINT_COLOR,
                                        zorder=3))
    for x, y, text, color in labels(d):
        ax.text(x, y, text, color=color, ha="center", va="baseline", path_effects=halo, **font)
    for b in d.boxes:
        if b.kind == "end":
            continue
        fill = INPUT_FILL if b.kind in ("input", "param") else FILL
        if b.width == b.height:
            ax.add_patch(patches.Circle((b.x, b.y), b.width / 2, facecolor=fill, edgecolor=INK, zorder=4))
        else:
            ax.add_patch(patches.FancyBboxPatch((b.x - b.width / 2, b.y - b.height / 2), b.width, b.height,
                                                boxstyle="round,pad=0,rounding_size=6", facecolor=fill,
                                                edgecolor=INK, zorder=4))
        ax.text(b.x, b.y, b.symbol, ha="center", va="center", fontweight="bold", zorder=5,
                **{**font, "fontsize": 10})
        if b.name and b.name != b.symbol:
            ax.text(b.x, b.y + b.height / 2 + 14, b.name, color=MUTED, ha="center", va="baseline", zorder=5,
                    path_effects=halo, **{**font, "fontsize": 8})
        if b.note and not b.trunk:
            ax.text(b.x, b.y + b.height / 2 + 28, b.note, color=ADJOINT_COLOR, ha="center", va="baseline",
                    zorder=5, path_effects=halo, **{**font, "fontsize": 8})
    path = Path(path)
    fig.savefig(path, dpi=dpi, facecolor="white")
    plt.close(fig)
    return path


# -------------------------------------------------------------------------------------------- pictures


class Picture:
    """What draws itself as a circuit: subclasses give `diagram()`; this gives svg(), dot(), write()
    and the notebook's display."""

    def diagram(self) -> Diagram:
        raise NotImplementedError

    def svg(self) -> str:
        """The picture as an SVG document (no Graphviz needed)."""
        return svg(layout(self.diagram()))

    def dot(self) -> str:
        """The picture as Graphviz DOT text."""
        return dot(self.diagram())

    def write(self, path: str | Path) -> Path:
        """Write the picture to `path`: .svg, .png (matplotlib) or .dot/.gv (DOT text); returns the path."""
        from gradc.errors import GradcError

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".svg", ".png", ".dot", ".gv"):
            raise GradcError(f"cannot draw to {str(path)!r}: the file must end in .svg, .png, .dot or .gv")
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".png":
            return png(layout(self.diagram()), path)
        path.write_text(self.svg() if suffix == ".svg" else self.dot(), encoding="utf-8")
        return path

    def _repr_svg_(self) -> str:
        return self.svg()
