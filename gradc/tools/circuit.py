"""Circuit pictures drawn from a laid-out `Diagram` (tools/layout.py): SVG, Graphviz DOT text, PNG.

SVG and PNG draw the same placement (values above the wires in green, adjoints beneath in red, a
fan-out's trunk and junction marked); DOT leaves the placement to Graphviz, when someone has it.
Nothing here needs Graphviz; PNG needs matplotlib. `Picture` gives svg(), dot(), write() and the
notebook display to whatever can build a diagram.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from gradc.tools.layout import ADJOINT_COLOR, VALUE_COLOR, Box, Diagram, Wire, labels, layout, segments

__all__ = ["Box", "Diagram", "Picture", "Wire", "dot", "layout", "png", "svg"]

INK, MUTED, FILL, INPUT_FILL = "#24292f", "#6e7781", "#f6f8fa", "#ddf4ff"
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"


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
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
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


MAX_PIXELS = 30e6   # a PNG of a large circuit is drawn at a lower resolution rather than slowly


def png(d: Diagram, path: str | Path, dpi: int = 144) -> Path:
    """Draw the laid-out diagram with matplotlib (the same placement as `svg`) and save it as PNG, at
    `dpi` (lowered for a circuit so large that its picture would pass MAX_PIXELS)."""
    try:
        import matplotlib
    except ImportError:
        from gradc.errors import GradcError

        raise GradcError("drawing a PNG needs matplotlib (pip install matplotlib); .svg and .dot need "
                         "nothing") from None
    matplotlib.use("Agg", force=False)
    from matplotlib import patches, patheffects
    from matplotlib import pyplot as plt
    from matplotlib.path import Path as MPath

    if not d.width:
        layout(d)
    dpi = int(min(dpi, 100 * (MAX_PIXELS / max(d.width * d.height, 1.0)) ** 0.5))
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
        ax.add_artist(patches.FancyArrowPatch(path=MPath(verts, codes), arrowstyle="-|>", mutation_scale=9,
                                             color=MUTED, lw=1.1, linestyle="--" if w.fanout else "-"))
        if w.trunk:
            ax.add_artist(patches.Circle((w.points[0][0] + w.head, w.points[0][1]), 3.5, color=ADJOINT_COLOR,
                                        zorder=3))
    for x, y, text, color in labels(d):
        ax.text(x, y, text, color=color, ha="center", va="baseline", path_effects=halo, **font)
    for b in d.boxes:
        if b.kind == "end":
            continue
        fill = INPUT_FILL if b.kind in ("input", "param") else FILL
        if b.width == b.height:
            ax.add_artist(patches.Circle((b.x, b.y), b.width / 2, facecolor=fill, edgecolor=INK, zorder=4))
        else:
            ax.add_artist(patches.FancyBboxPatch((b.x - b.width / 2, b.y - b.height / 2), b.width, b.height,
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
