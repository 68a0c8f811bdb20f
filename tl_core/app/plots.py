"""Plotly figure builders: data in, `go.Figure` out. Used by the app's pages, the CLI and reports.

Live charts use `graph_objects` (not plotly express) with float32 arrays: a 2,000-point
scatter builds in ~10 ms this way, against ~240 ms through px with a colour column. The
feature map uses SVG `Scatter`, not `Scattergl`: at <= 2,000 points SVG draws quickly, while
WebGL in a browser without GPU acceleration (software GL) took over a second to start.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

SOURCE_COLOUR = "#1f77b4"
TARGET_COLOUR = "#ff7f0e"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]


def _layout(fig: go.Figure, title: str, x: str = "", y: str = "", height: int = 320) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, xanchor="left", font=dict(size=15)), height=height,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title=x, yaxis_title=y,
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
                      # the tool bar stands down the right edge: across the top it covered the title and legend
                      modebar=dict(orientation="v"), template="plotly_white")
    return fig


def empty(title: str, message: str = "Waiting for the first epoch ...") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="#888"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title)


def loss_curves(history: Sequence[dict[str, Any]]) -> go.Figure:
    """One line per named loss term (epoch means)."""
    if not history:
        return empty("Loss terms")
    epochs = [h["epoch"] for h in history]
    terms: list[str] = []
    for h in history:
        terms += [k for k in h.get("losses", {}) if k not in terms]
    fig = go.Figure()
    for i, k in enumerate(terms):
        fig.add_trace(go.Scatter(x=epochs, y=[h["losses"].get(k) for h in history], mode="lines+markers", name=k,
                                 line=dict(width=3 if k == "total" else 2, dash="dot" if k == "total" else None,
                                           color=PALETTE[i % len(PALETTE)])))
    return _layout(fig, "Loss terms (mean per epoch)", "epoch", "loss")


def accuracy_curves(history: Sequence[dict[str, Any]]) -> go.Figure:
    if not history:
        return empty("Accuracy")
    e = [h["epoch"] for h in history]
    fig = go.Figure()
    # an interim epoch reads a sample of each test split: the hover says on how many images
    hover = "epoch %{x}: %{y:.1%} of %{customdata:,} images<extra>%{fullData.name}</extra>"
    fig.add_trace(go.Scatter(x=e, y=[h["source_acc"] for h in history], name="source (test)", mode="lines+markers",
                             line=dict(color=SOURCE_COLOUR), customdata=[h.get("source_n") or 0 for h in history],
                             hovertemplate=hover))
    fig.add_trace(go.Scatter(x=e, y=[h["target_acc"] for h in history], name="target (test)", mode="lines+markers",
                             line=dict(color=TARGET_COLOUR, width=3),
                             customdata=[h.get("target_n") or 0 for h in history], hovertemplate=hover))
    if any("source_val_acc" in h for h in history):
        fig.add_trace(go.Scatter(x=e, y=[h.get("source_val_acc") for h in history], name="source (validation)",
                                 mode="lines", line=dict(color=SOURCE_COLOUR, dash="dot")))
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return _layout(fig, "Source and target accuracy", "epoch", "accuracy")


def domain_gap(history: Sequence[dict[str, Any]]) -> go.Figure:
    """Proxy A-distance (0 = indistinguishable, 2 = separable) and MMD between source and target features."""
    if not history:
        return empty("Domain gap")
    e = [h["epoch"] for h in history]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=e, y=[h["a_distance"] for h in history], name="proxy A-distance", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=e, y=[h["mmd"] for h in history], name="MMD²", mode="lines+markers", yaxis="y2"))
    fig.update_layout(yaxis=dict(range=[0, 2.05], title="A-distance"),
                      yaxis2=dict(overlaying="y", side="right", title="MMD²", rangemode="tozero", showgrid=False))
    return _layout(fig, "Domain gap (lower = more aligned)", "epoch")


SCORE_NAMES = {"source_val_acc": "source validation accuracy", "im": "information maximisation",
               "snd": "soft neighbourhood density", "neg_entropy": "− mean target entropy"}


def selection_scores(history: Sequence[dict[str, Any]], chosen_epoch: int | None = None) -> go.Figure:
    """The label-free selection scores per epoch (each scaled to 0-1 over the run) beside the target
    accuracy they try to predict, with the epoch the run reports marked."""
    rows = [h for h in history if h.get("selection")]
    if not rows:
        return empty("Model selection", "No selection scores recorded for this run.")
    e = [h["epoch"] for h in rows]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=e, y=[h["target_acc"] for h in rows], name="target accuracy (uses labels)",
                             mode="lines+markers", line=dict(color=TARGET_COLOUR, width=3)))
    for i, (key, label) in enumerate(SCORE_NAMES.items()):
        v = np.array([h["selection"].get(key, np.nan) for h in rows], dtype=float)
        span = np.nanmax(v) - np.nanmin(v) if np.isfinite(v).any() else 0.0
        scaled = (v - np.nanmin(v)) / span if span > 0 else np.full_like(v, 0.5)
        fig.add_trace(go.Scatter(x=e, y=scaled, name=label, mode="lines", customdata=v,
                                 hovertemplate=f"{label}: %{{customdata:.4g}}<extra></extra>",
                                 line=dict(dash="dot", color=PALETTE[(i + 2) % len(PALETTE)])))
    if chosen_epoch is not None:
        fig.add_vline(x=chosen_epoch, line=dict(color="#444", dash="dash"),
                      annotation_text=f"reported: epoch {chosen_epoch}", annotation_position="top left")
    fig.update_yaxes(range=[-0.02, 1.05])
    return _layout(fig, "Label-free selection scores (scaled 0-1) vs target accuracy", "epoch")


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "Target confusion") -> go.Figure:
    """Counts per (true, predicted) class, shaded by the share of the true class. A heatmap cannot be clicked
    in Streamlit, so every non-empty cell also carries an invisible point whose `customdata` is
    [true, predicted]: a click selects the cell, and the page opens its images (`api.cell_images`)."""
    m = np.asarray(matrix, dtype=np.float32)
    rows = m.sum(1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    labels = [str(c) for c in classes]
    fig = go.Figure(go.Heatmap(z=frac, x=labels, y=labels, colorscale="Blues", zmin=0, zmax=1,
                               text=m.astype(int), texttemplate="%{text}", hoverinfo="skip"))
    t, p = np.nonzero(m)
    # customdata as plain lists: a numpy array goes to the browser packed, and a selection reads it back wrong
    fig.add_trace(go.Scatter(
        x=[labels[j] for j in p], y=[labels[i] for i in t], mode="markers", customdata=np.stack([t, p], 1).tolist(),
        marker=dict(size=max(12, 260 // max(len(labels), 1)), symbol="square", color="rgba(0,0,0,0.01)"),
        text=[f"true {labels[i]}, predicted {labels[j]}: {int(m[i, j])} ({frac[i, j]:.0%} of the class)"
              for i, j in zip(t, p)],
        hovertemplate="%{text}<extra>click: its images</extra>", showlegend=False))
    fig.update_yaxes(autorange="reversed", title="true class", type="category")
    fig.update_xaxes(title="predicted class", type="category")
    return _layout(fig, title, height=360)


def embedding_scatter(points: dict[str, Any] | None, classes: Sequence[str] | None = None,
                      colour_by: str = "domain") -> go.Figure:
    """Source vs target features in 2-D, coloured by domain, by class or by correct/misclassified (then the
    symbol is the domain: circle source, x target); misclassified target points get a red ring. Each point's
    `customdata` is its place in `points`, so a click can open its image (`api.point_image`)."""
    if not points or not points.get("x"):
        return empty("Feature map (t-SNE)")
    x = np.asarray(points["x"], dtype=np.float32)
    y = np.asarray(points["y"], dtype=np.float32)
    dom = np.asarray(points["domain"])
    lab = np.asarray(points["label"])
    pred = np.asarray(points.get("pred", lab))
    names = [str(c) for c in classes] if classes else [str(i) for i in range(int(lab.max()) + 1)]
    idx = np.arange(len(x))
    fig = go.Figure()

    def add(m: np.ndarray, name: str, colour: str, symbol: str = "circle", **kw: Any) -> None:
        if not m.any():
            return
        fig.add_trace(go.Scatter(
            x=x[m], y=y[m], mode="markers", name=name, customdata=idx[m].tolist(),
            marker=dict(color=colour, size=6 if symbol == "x" else 5, opacity=0.75, symbol=symbol),
            text=[f"{d}, class {names[int(a)]}, predicted {names[int(b)]}" for d, a, b in zip(dom[m], lab[m], pred[m])],
            hovertemplate="%{text}<extra>click: its image</extra>",
            unselected=dict(marker=dict(opacity=0.75)), **kw))  # a click opens an image, it does not fade the map

    shapes = (("source", "circle"), ("target", "x"))
    if colour_by == "class":
        for c in range(len(names)):
            for d, symbol in shapes:
                add((lab == c) & (dom == d), f"{names[c]} ({d})", PALETTE[c % len(PALETTE)], symbol,
                    legendgroup=names[c], showlegend=d == "source")
    elif colour_by == "correct":
        for d, symbol in shapes:
            add((dom == d) & (pred == lab), f"{d}: right", "#2ca02c", symbol)
            add((dom == d) & (pred != lab), f"{d}: misclassified", "#d62728", symbol)
    else:
        for d, col in (("source", SOURCE_COLOUR), ("target", TARGET_COLOUR)):
            add(dom == d, d, col)
    wrong_t = (dom == "target") & (pred != lab)
    if wrong_t.any() and colour_by != "correct":  # one overlay trace: cheaper to draw than a style per point
        fig.add_trace(go.Scatter(x=x[wrong_t], y=y[wrong_t], mode="markers", name="misclassified target",
                                 marker=dict(size=11, color="rgba(0,0,0,0)", line=dict(width=1.5, color="#d62728")),
                                 hoverinfo="skip"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    title = f"Feature map ({points.get('method', 'tsne').upper()}), epoch {points.get('epoch', '?')}"
    return _layout(fig, title, height=460)


def overlay_accuracy(curves: dict[str, Sequence[dict[str, Any]]]) -> go.Figure:
    """Target accuracy per epoch for several runs."""
    if not curves:
        return empty("Target accuracy per epoch", "Select runs to compare")
    fig = go.Figure()
    for i, (name, hist) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=[h["epoch"] for h in hist], y=[h["target_acc"] for h in hist], name=name,
                                 mode="lines+markers", line=dict(color=PALETTE[i % len(PALETTE)])))
    fig.update_yaxes(tickformat=".0%")
    _layout(fig, "Target accuracy per epoch", "epoch", "target accuracy", height=360)
    if len(curves) > 4:  # more entries than fit beside the title
        fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0), height=420,
                          margin=dict(l=10, r=10, t=40, b=90))
    return fig


def accuracy_bars(names: Sequence[str], accs: Sequence[float], gains: Sequence[float | None]) -> go.Figure:
    """Target accuracy per run; red bars are runs that do worse than their source-only baseline."""
    colours = ["#d62728" if g is not None and g < 0 else "#2ca02c" if g is not None and g > 0 else "#7f7f7f"
               for g in gains]
    text = [f"{a:.1%}" + (f" ({g:+.1%})" if g is not None else "") for a, g in zip(accs, gains)]
    fig = go.Figure(go.Bar(x=list(names), y=list(accs), marker_color=colours, text=text, textposition="outside"))
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
    return _layout(fig, "Target accuracy (in brackets: gain over source only)", "", "target accuracy", height=360)


def experiment_bars(results: Sequence[dict[str, Any]], reference_source: str = "") -> go.Figure:
    """One bar per strategy: mean target accuracy over seeds with its 95 % interval as whiskers (seed
    spread and test-set error), green only where the gain's interval is above zero (red: negative
    transfer, grey: the baseline), each seed as a dot, a published number as a diamond."""
    rs = [r for r in results if r.get("target_acc_mean") is not None]
    if not rs:
        return empty("Target accuracy per strategy", "Waiting for the first runs to finish ...")
    names = [r["strategy"] for r in rs]
    colours = ["#7f7f7f" if r["role"] == "baseline" else "#9467bd" if r["role"] == "upper"
               else "#d62728" if r.get("negative_transfer") else "#2ca02c" if (r.get("gain_ci") or [0])[0] > 0
               else "#bcbd22" for r in rs]
    text = [f"{100 * r['target_acc_mean']:.1f}%" + ("" if r["role"] == "baseline" or r.get("gain") is None
                                                      else f" ({100 * r['gain']:+.1f})") for r in rs]
    fig = go.Figure(go.Bar(x=names, y=[r["target_acc_mean"] for r in rs], marker_color=colours, text=text,
                           textposition="outside", name="mean over seeds",
                           error_y=_whiskers([r["target_acc_mean"] for r in rs],
                                             [r.get("target_acc_ci") or [r["target_acc_mean"]] * 2 for r in rs])))
    seeds_x, seeds_y = [], []
    for r in rs:
        for run in r["runs"]:
            if run["target_acc"] is not None and run["status"] == "finished":
                seeds_x.append(r["strategy"])
                seeds_y.append(run["target_acc"])
    fig.add_trace(go.Scatter(x=seeds_x, y=seeds_y, mode="markers", name="one seed",
                             marker=dict(color="black", size=6, opacity=0.6)))
    ref = [(r["strategy"], r["reference"]) for r in rs if r.get("reference") is not None]
    if ref:
        fig.add_trace(go.Scatter(x=[a for a, _ in ref], y=[b for _, b in ref], mode="markers",
                                 name=f"published ({reference_source})" if reference_source else "published",
                                 marker=dict(symbol="diamond", size=12, color="#1f77b4",
                                             line=dict(width=1, color="white"))))
    lo = min([r["target_acc_mean"] for r in rs] + seeds_y)
    fig.update_yaxes(range=[max(0.0, lo - 0.15), 1.05], tickformat=".0%")
    _layout(fig, "Target accuracy per strategy (mean ± std over seeds)", "", "target accuracy", height=420)
    # below the plot: above it, three legend entries run into the title in a half-width column
    long = max(len(n) for n in names) > 12  # long names are drawn slanted, and reach lower
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.38 if long else -0.12, xanchor="left", x=0),
                      margin=dict(l=10, r=10, t=40, b=120 if long else 60))
    return fig


def stage_diagram(stages: Sequence[tuple[str, int]], frozen: int) -> go.Figure:
    """The backbone's stages left to right, frozen ones grey, trainable ones green, sized by parameters."""
    names = [s for s, _ in stages] + ["head"]
    counts = [c for _, c in stages] + [0]
    colours = ["#9e9e9e" if i < frozen else "#2ca02c" for i in range(len(stages))] + ["#1f77b4"]
    labels = [("frozen" if i < frozen else "trains") for i in range(len(stages))] + ["new head, trains"]
    fig = go.Figure(go.Bar(x=names, y=[max(c, 1) for c in counts], marker_color=colours,
                           text=[f"{_fmt_count(c)}<br>{lab}" if c else lab for c, lab in zip(counts, labels)],
                           textposition="outside", hovertemplate="%{x}: %{text}<extra></extra>"))
    fig.update_yaxes(type="log", title="parameters", showticklabels=False)
    return _layout(fig, "Stages (input → output)", height=300)


def _fmt_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else str(n)


def embedding_animation(frames: Sequence[dict[str, Any]]) -> go.Figure:
    """Replay of the feature map over epochs (Plotly's own play button and slider, runs in the browser)."""
    frames = [f for f in frames if f and f.get("x")]
    if not frames:
        return empty("Feature map over epochs")

    def traces(p):
        dom = np.asarray(p["domain"])
        x, y = np.asarray(p["x"], np.float32), np.asarray(p["y"], np.float32)
        return [go.Scatter(x=x[dom == d], y=y[dom == d], mode="markers", name=d,
                           marker=dict(color=col, size=5, opacity=0.7))
                for d, col in (("source", SOURCE_COLOUR), ("target", TARGET_COLOUR))]

    allx = np.concatenate([np.asarray(f["x"], np.float32) for f in frames])
    ally = np.concatenate([np.asarray(f["y"], np.float32) for f in frames])
    pad = 0.05 * max(float(np.ptp(allx)), float(np.ptp(ally)), 1e-3)
    fig = go.Figure(data=traces(frames[0]),
                    frames=[go.Frame(data=traces(f), name=str(f["epoch"])) for f in frames])
    steps = [dict(method="animate", label=str(f["epoch"]),
                  args=[[str(f["epoch"])], dict(mode="immediate", frame=dict(duration=600, redraw=True),
                                                transition=dict(duration=400))]) for f in frames]
    fig.update_layout(
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.05, xanchor="left", yanchor="top",
                          buttons=[dict(label="▶ Play", method="animate",
                                        args=[None, dict(frame=dict(duration=600, redraw=True), fromcurrent=True,
                                                         transition=dict(duration=400))])])],
        sliders=[dict(active=0, steps=steps, x=0.12, len=0.88, y=-0.02, currentvalue=dict(prefix="epoch "))])
    fig.update_xaxes(visible=False, range=[float(allx.min()) - pad, float(allx.max()) + pad])
    fig.update_yaxes(visible=False, range=[float(ally.min()) - pad, float(ally.max()) + pad])
    return _layout(fig, "Feature map over epochs: source vs target", height=500)


def _method_colour(method: str, order: Sequence[str]) -> str:
    """One colour per method across the advisor's charts (source only always grey)."""
    if method == "source_only":
        return "#7f7f7f"
    others = [m for m in order if m != "source_only"]
    return PALETTE[others.index(method) % len(PALETTE)] if method in others else PALETTE[-1]


def _whiskers(values: Sequence[float], intervals: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Plotly error bars drawing each value's [low, high] interval."""
    return dict(type="data", visible=True, array=[hi - v for v, (_, hi) in zip(values, intervals)],
                arrayminus=[v - lo for v, (lo, _) in zip(values, intervals)])


def advice_bars(recommendations: Sequence[dict[str, Any]]) -> go.Figure:
    """The advisor's predicted target accuracy per (candidate, method), grouped by candidate, with the
    predictor's 95 % interval as whiskers."""
    recommendations = [r for r in recommendations if r.get("predicted_acc") is not None]
    if not recommendations:
        return empty("Predicted target accuracy", "No fitted predictor: only the scores are known.")
    fig = go.Figure()
    methods = list(dict.fromkeys(r["method"] for r in recommendations))
    for m in methods:
        rs = [r for r in recommendations if r["method"] == m]
        fig.add_trace(go.Bar(x=[r["candidate"] for r in rs], y=[r["predicted_acc"] for r in rs], name=m,
                             marker_color=_method_colour(m, sorted(methods)),
                             error_y=_whiskers([r["predicted_acc"] for r in rs], [r["predicted_acc_ci"] for r in rs])))
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    return _layout(fig, "Predicted target accuracy (95 % interval of the predictor)", "", "target accuracy",
                   height=360)


def probe_bars(probes: Sequence[dict[str, Any]]) -> go.Figure:
    """What the advisor's probes read: each probe's target accuracy estimated without target labels (ATC, with
    its 95 % bootstrap interval) after a short piece of training, in the probes' composite order, and its
    composite rank of the label-free validators as the bar's text."""
    ps = [p for p in probes if p.get("atc") is not None]
    if not ps:
        return empty("What the probes read", "No probe has an estimate.")
    fig = go.Figure()
    methods = sorted(dict.fromkeys(p["method"] for p in ps))
    for m in methods:
        rs = [p for p in ps if p["method"] == m]
        fig.add_trace(go.Bar(x=[f"{p['backbone']} · {p['freeze']} frozen" for p in rs], y=[p["atc"] for p in rs],
                             name=m, marker_color=_method_colour(m, methods),
                             text=[f"composite {p['composite']:.2f}" for p in rs], textposition="outside",
                             error_y=_whiskers([p["atc"] for p in rs], [p["atc_ci"] for p in rs])))
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
    return _layout(fig, "Probes: target accuracy estimated without target labels (ATC, 95 % interval)", "",
                   "estimated target accuracy", height=360)


def advisor_track_record(points: Sequence[dict[str, Any]]) -> go.Figure:
    """Predicted (held out: its pair never seen in fitting) against measured target accuracy, one point
    per measured cell of bench/advisor.py."""
    if not points:
        return empty("The advisor's track record", "No bench results on this machine.")
    fig = go.Figure()
    methods = sorted(dict.fromkeys(p["method"] for p in points))
    for m in methods:
        ps = [p for p in points if p["method"] == m]
        fig.add_trace(go.Scatter(x=[p["predicted_acc"] for p in ps], y=[p["target_acc"] for p in ps], mode="markers",
                                 name=m, marker=dict(size=8, color=_method_colour(m, methods)),
                                 text=[f"{p['pair']} · {p['backbone']} freeze {p['freeze']}" for p in ps]))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="predicted = measured",
                             line=dict(color="#999", dash="dot")))
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return _layout(fig, "Predicted (held out) vs measured target accuracy", "predicted", "measured", height=360)
