"""One SVG line plot of accuracies (standard library only), shared by compare_runs.py (accuracy
per epoch) and plot_speedrun.py (accuracy against training time)."""
import math


def line_plot(series, path, title, xlabel, xticks, x0=None, width=640, legend=150, dots=False):
    """Write {name: [run]} as an SVG, where each run is [(x, accuracy in [0, 1])]: one line per
    run, one colour per name. `xticks` are the x values labelled; `x0` the left end of the axis
    (default: the smallest x)."""
    w, h, left, right, top, bottom = width, 400, 60, legend, 40, 50
    pts = [p for runs in series.values() for run in runs for p in run]
    xs = [x for x, _ in pts]
    x0 = min(xs) if x0 is None else x0
    x1 = max(xs)
    lo = math.floor(min(v for _, v in pts) * 10) / 10
    hi = math.ceil(max(v for _, v in pts) * 10) / 10
    x = lambda t: left + (t - x0) / max(x1 - x0, 1e-9) * (w - left - right)
    y = lambda v: top + (hi - v) / max(hi - lo, 1e-9) * (h - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    for i in range(round((hi - lo) / 0.05) + 1):
        v = lo + i * 0.05
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="#ddd"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                   f'text-anchor="end">{100 * v:.0f}%</text>')
    for t in xticks:
        out.append(f'<text x="{x(t):.1f}" y="{h - bottom + 18}" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">{xlabel}</text>')
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e"]
    for i, (name, runs) in enumerate(series.items()):
        c = colours[i % len(colours)]
        for run in runs:
            d = " ".join(f"{'M' if j == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for j, (t, v) in enumerate(run))
            out.append(f'<path d="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
            if dots:
                out.extend(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{c}"/>' for t, v in run)
        ly = top + 20 * i + 10
        out.append(f'<line x1="{w - right + 10}" x2="{w - right + 30}" y1="{ly}" y2="{ly}" '
                   f'stroke="{c}" stroke-width="2"/><text x="{w - right + 35}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
