#!/usr/bin/env python3
"""Draws an SVG bar chart comparing targets (e.g. "FastAPI reference" vs "this server") on three
panels: reads (GET /users/me/ req/s at 64 connections), logins (logins/s at 4 concurrent) and
reads during logins (p99 ms of GET /users/me/ in the mix scenario; lower is better).

Usage:
    python3 bench/chart.py -o docs/bench.svg target/bench/reference.json target/bench/results.json
    python3 bench/chart.py -o docs/bench.svg --label "FastAPI reference" --label "this server" a.json b.json
    python3 bench/chart.py -o docs/bench.svg figures.json

The first target is the baseline that the others are compared with. Each input is either
  * a results file written by bench/load.sh: one target, named by its meta.label, or
  * a hand-written file of figures, giving one target per entry:
      {"title": "optional", "note": "optional footnote",
       "targets": [{"label": "FastAPI reference", "reads_rps": 1290, "logins_per_s": 3.3,
                    "mix_read_p99_ms": 954},
                   {"label": "this server", "reads_rps": 21600, "logins_per_s": 3.9,
                    "mix_read_p99_ms": 20.8}]}
  * or a hand-written file of ratios (target / baseline, for each figure as measured, so a
    p99 ratio of 0.02 means 50x lower); the baseline is drawn as 1:
      {"baseline": "FastAPI reference",
       "ratios": {"this server": {"reads_rps": 16.7, "logins_per_s": 1.2, "mix_read_p99_ms": 0.02}}}
A missing figure is drawn as "n/a". The value axes are logarithmic and every bar is labelled, so
a 40x difference stays readable. Python 3 standard library only.
"""

import argparse
import json
import math
import sys
from xml.sax.saxutils import escape

# (key, title, what is measured, unit, higher is better, where it is in load.sh's results)
PANELS = [
    ("reads_rps", "Reads", "GET /users/me/, 64 connections", "req/s", True, ("me_c64", "rps")),
    ("logins_per_s", "Logins", "POST /token, 4 concurrent", "logins/s", True, ("login_c4", "rps")),
    ("mix_read_p99_ms", "Reads during logins", "p99 of GET /users/me/ (16 conns), 4 logins in flight",
     "ms", False, ("mix_me_c16", "p99_ms")),
]
COLORS = ["#8d99a6", "#2b6cb0", "#dd8a2a", "#3f9b5a"]
WIDTH, HEIGHT = 960, 430
PLOT_TOP, PLOT_BOTTOM = 122, 340  # y range of the bars
FONT = "font-family='Helvetica, Arial, sans-serif'"


def load_targets(path):
    """Returns (targets, title, note) from one input file; a target is {"label", figures...}."""
    with open(path) as f:
        data = json.load(f)
    if "scenarios" in data:  # bench/load.sh results
        meta = data.get("meta", {})
        target = {"label": meta.get("label") or path, "meta": meta}
        for key, *_, (scenario, field) in PANELS:
            value = data["scenarios"].get(scenario, {}).get(field)
            target[key] = value if isinstance(value, (int, float)) and value > 0 else None
        return [target], None, None
    if "ratios" in data:
        base = {"label": data.get("baseline", "baseline"), "ratio": True}
        base.update({key: 1.0 for key, *_ in PANELS})
        others = [{"label": label, "ratio": True, **figures} for label, figures in data["ratios"].items()]
        return [base] + others, data.get("title"), data.get("note")
    if "targets" in data:
        return list(data["targets"]), data.get("title"), data.get("note")
    sys.exit(f"chart: {path}: expected 'scenarios' (bench/load.sh), 'targets' or 'ratios'")


def fmt(value, ratio=False):
    if value is None:
        return "n/a"
    if ratio:
        return f"{value:.3g}\u00d7"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}" if value < 1 else f"{value:.1f}"


def tick_label(value):
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def log_range(values):
    """Decades that hold all values, with room under the smallest bar so it stays visible."""
    low, high = min(values), max(values)
    lo = 10 ** math.floor(math.log10(low))
    if low / lo < 2:
        lo /= 10
    hi = 10 ** math.ceil(math.log10(high))
    if hi / high < 1.3:  # leave room for the value label above the tallest bar
        hi *= 10
    return lo, hi


def comparison(base, value, higher_better):
    """'16.7x higher (better)' for value against base."""
    if base is None or value is None:
        return None
    factor = value / base
    up = factor >= 1
    size = factor if up else 1 / factor
    if size < 1.05:
        return "about the same"
    better = up == higher_better
    return f"{size:.3g}\u00d7 {'higher' if up else 'lower'} ({'better' if better else 'worse'})"


def panel(svg, x0, width, spec, targets):
    key, title, what, unit, higher_better, _ = spec
    ratio_mode = any(t.get("ratio") for t in targets)
    cx = x0 + width / 2
    svg.append(f"<text x='{cx}' y='{PLOT_TOP - 42}' text-anchor='middle' font-size='15' font-weight='bold'>"
               f"{escape(title)}</text>")
    svg.append(f"<text x='{cx}' y='{PLOT_TOP - 25}' text-anchor='middle' font-size='11' fill='#444'>"
               f"{escape(what)}</text>")
    better = "higher is better" if higher_better else "lower is better"
    unit_text = f"relative to {targets[0]['label']}" if ratio_mode else unit
    svg.append(f"<text x='{cx}' y='{PLOT_TOP - 10}' text-anchor='middle' font-size='11' fill='#666'>"
               f"{escape(unit_text)} (log scale), {better}</text>")
    values = [t.get(key) for t in targets]
    known = [v for v in values if isinstance(v, (int, float)) and v > 0]
    axis_x, plot_w = x0 + 44, width - 60
    svg.append(f"<line x1='{axis_x}' y1='{PLOT_BOTTOM}' x2='{axis_x + plot_w}' y2='{PLOT_BOTTOM}' stroke='#333'/>")
    if not known:
        svg.append(f"<text x='{cx}' y='{(PLOT_TOP + PLOT_BOTTOM) / 2}' text-anchor='middle' fill='#888'>n/a</text>")
        return
    lo, hi = log_range(known)

    def y_of(v):
        return PLOT_BOTTOM - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (PLOT_BOTTOM - PLOT_TOP)

    decade = lo
    while decade <= hi * 1.001:  # grid line and label at every power of ten
        y = y_of(decade)
        svg.append(f"<line x1='{axis_x}' y1='{y:.1f}' x2='{axis_x + plot_w}' y2='{y:.1f}' stroke='#e3e3e3'/>")
        svg.append(f"<text x='{axis_x - 5}' y='{y + 4:.1f}' text-anchor='end' font-size='10' fill='#666'>"
                   f"{tick_label(decade)}</text>")
        decade *= 10
    slot = plot_w / len(targets)
    bar_w = min(70, slot * 0.6)
    for i, (target, value) in enumerate(zip(targets, values)):
        bx = axis_x + slot * i + (slot - bar_w) / 2
        label = fmt(value if value in known else None, ratio_mode)
        if value in known:
            y = y_of(value)
            svg.append(f"<rect x='{bx:.1f}' y='{y:.1f}' width='{bar_w:.1f}' height='{PLOT_BOTTOM - y:.1f}' "
                       f"fill='{COLORS[i % len(COLORS)]}'><title>{escape(target['label'])}: {label}</title></rect>")
        else:
            y = PLOT_BOTTOM
        svg.append(f"<text x='{bx + bar_w / 2:.1f}' y='{y - 6:.1f}' text-anchor='middle' font-size='12' "
                   f"font-weight='bold'>{escape(label)}</text>")
    # How each target compares with the first one, spelled out under the bars.
    for i, (target, value) in enumerate(zip(targets[1:], values[1:]), start=1):
        text = comparison(values[0] if values[0] in known else None, value if value in known else None, higher_better)
        if text:
            svg.append(f"<text x='{cx}' y='{PLOT_BOTTOM + 8 + 16 * i}' text-anchor='middle' font-size='12' "
                       f"fill='{COLORS[i % len(COLORS)]}'>{escape(target['label'])}: {escape(text)}</text>")


def render(targets, title, notes):
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
           f"viewBox='0 0 {WIDTH} {HEIGHT}' {FONT}>",
           f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>",
           f"<text x='{WIDTH / 2}' y='28' text-anchor='middle' font-size='18' font-weight='bold'>{escape(title)}</text>"]
    # Legend: one swatch per target, centred.
    item_w = [26 + 7 * len(t["label"]) for t in targets]
    x = (WIDTH - sum(item_w)) / 2
    for i, (target, w) in enumerate(zip(targets, item_w)):
        svg.append(f"<rect x='{x:.0f}' y='41' width='12' height='12' fill='{COLORS[i % len(COLORS)]}'/>")
        svg.append(f"<text x='{x + 17:.0f}' y='51' font-size='12'>{escape(target['label'])}</text>")
        x += w
    width = WIDTH / len(PANELS)
    for i, spec in enumerate(PANELS):
        panel(svg, i * width, width, spec, targets)
    for i, note in enumerate(notes):
        svg.append(f"<text x='12' y='{HEIGHT - 10 - 14 * (len(notes) - 1 - i)}' font-size='10' fill='#777'>"
                   f"{escape(note)}</text>")
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="results.json files from bench/load.sh, or hand-written figures")
    parser.add_argument("-o", "--out", required=True, help="SVG file to write")
    parser.add_argument("--label", action="append", dest="labels",
                        help="name of a target, once per target in order (overrides the files')")
    parser.add_argument("--title", help="chart title")
    args = parser.parse_args()
    targets, titles, notes = [], [], []
    for path in args.inputs:
        found, title, note = load_targets(path)
        targets += found
        titles.append(title)
        notes.append(note)
    if args.labels:
        if len(args.labels) != len(targets):
            sys.exit(f"chart: {len(args.labels)} labels for {len(targets)} targets")
        for target, label in zip(targets, args.labels):
            target["label"] = label
    for target in targets:  # where and how each load.sh result was measured, as a footnote
        if "meta" in target:
            meta = {k: target["meta"].get(k, "?") for k in ("when", "dur_s", "ldur_s", "nproc")}
            commit = f", commit {target['meta']['commit']}" if target["meta"].get("commit") else ""
            notes.append("{label}: measured {when} ({dur_s} s per read, {ldur_s} s per login scenario, "
                         "{nproc} cores{commit})".format(label=target["label"], commit=commit, **meta))
    title = args.title or next((t for t in titles if t), None) or " vs ".join(t["label"] for t in targets)
    with open(args.out, "w") as f:
        f.write(render(targets, title, [n for n in notes if n]))
    print(f"chart: wrote {args.out}")


if __name__ == "__main__":
    main()
