"""Plotly figures built from a run's metrics columns (as returned by RunDir.read_metrics)."""

from __future__ import annotations

import numpy as np
import pandas  # noqa: F401  plotly imports it lazily; done here, before any training thread
# exists, so the two threads never race on a half-imported module ("partially initialized").
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.runs import METRIC_FIELDS

_COLOURS = {"d_loss": "#d62728", "g_loss": "#1f77b4", "d_real": "#2ca02c", "d_fake": "#ff7f0e"}
MAX_POINTS_PER_CURVE = 500  # more than a chart's width in pixels shows nothing extra
FEW_POINTS = 30  # up to this many points per run, the compared curves mark each one
TICK_EVERY_SCORE_UP_TO = 6  # quality scores; past this many plotly's own step ticks read better
_LABELS = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x)", "d_fake": "D(G(z))"}


def training_curves(metrics: dict[str, np.ndarray], height_px: int = 420) -> go.Figure:
    """Losses on the left, D's mean verdicts on real and generated images on the right."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Losses", "Discriminator outputs"))
    metrics = thin_out(metrics, MAX_POINTS_PER_CURVE)
    steps = metrics.get("step", np.array([]))
    for column, name in enumerate((("d_loss", "g_loss"), ("d_real", "d_fake")), start=1):
        for field in name:
            figure.add_trace(
                go.Scatter(
                    x=steps,
                    y=metrics.get(field, np.array([])),
                    name=_LABELS[field],
                    mode="lines",
                    line={"color": _COLOURS[field], "width": 2},
                ),
                row=1,
                col=column,
            )
    figure.update_xaxes(title_text="step")
    figure.update_yaxes(range=[0, 1], row=1, col=2)
    figure.update_layout(
        height=height_px,
        margin={"l": 40, "r": 10, "t": 40, "b": 90},
        legend={"orientation": "h", "x": 0.0, "y": -0.25},  # below the axis titles, not over them
        modebar={"orientation": "v"},  # down the right edge, clear of the subplot titles
    )
    return figure


def thin_out(metrics: dict[str, np.ndarray], max_points: int) -> dict[str, np.ndarray]:
    """Every k-th row (and always the last), so a long run's chart stays quick to draw."""
    count = len(metrics.get("step", ()))
    if count <= max_points:
        return metrics
    keep = np.unique(np.append(np.arange(0, count, -(-count // max_points)), count - 1))
    return {field: values[keep] for field, values in metrics.items()}


def records_to_columns(records) -> dict[str, np.ndarray]:
    """StepRecords (a live job's snapshot) -> the same columns metrics.csv gives."""
    return {
        field: np.array([getattr(record, field) for record in records], dtype=np.float64)
        for field in METRIC_FIELDS
    }


def quality_curves(rows, height_px: int = 320) -> go.Figure:
    """SWD, diversity and near copies over the run, each beside the training photos' own value."""
    figure = make_subplots(
        # Two-line titles: on one line the first two ran into each other at the page's column width.
        rows=1, cols=3, subplot_titles=("SWD<br>lower is closer", "MS-SSIM<br>lower is more varied", "Near copies")
    )
    steps = [row.step for row in rows]
    panels = (
        (1, "swd", "swd_baseline", "generated vs photos", "two halves of the photos"),
        (2, "diversity", "diversity_training", "generated", "photos"),
    )
    for column, field, reference, label, reference_label in panels:
        figure.add_trace(
            go.Scatter(x=steps, y=[getattr(row, field) for row in rows], name=label, mode="lines+markers",
                       line={"color": "#1f77b4"}, showlegend=column == 1), row=1, col=column,
        )
        figure.add_trace(
            # Markers too, so the photos' value shows from the first score on, when the line has one point.
            go.Scatter(x=steps, y=[getattr(row, reference) for row in rows], name=reference_label,
                       mode="lines+markers", marker={"size": 4}, line={"color": "#7f7f7f", "dash": "dash"},
                       showlegend=column == 1), row=1, col=column,
        )
    figure.add_trace(
        go.Scatter(x=steps, y=[100 * row.near_copy_fraction for row in rows], name="near copies %",
                   mode="lines+markers", line={"color": "#d62728"}, showlegend=False), row=1, col=3,
    )
    figure.update_yaxes(title_text="%", row=1, col=3, rangemode="tozero")
    figure.update_xaxes(title_text="step")
    if len(steps) <= TICK_EVERY_SCORE_UP_TO:
        # Plotly's own ticks around one or two scores fall between steps (199.5, 200.5).
        figure.update_xaxes(tickmode="array", tickvals=steps)
    figure.update_layout(
        height=height_px,
        margin={"l": 40, "r": 10, "t": 60, "b": 90},
        legend={"orientation": "h", "x": 0.0, "y": -0.3},
        modebar={"orientation": "v"},
    )
    return figure


def compared_curves(named_metrics: dict[str, dict[str, np.ndarray]], field: str, title: str) -> go.Figure:
    """One metric of several runs on one chart, one line per run."""
    figure = go.Figure()
    for name, metrics in named_metrics.items():
        thinned = thin_out(metrics, MAX_POINTS_PER_CURVE)
        steps = thinned.get("step", [])
        # A line through one point draws nothing (a run scored once); markers show each point.
        mode = "lines+markers" if len(steps) <= FEW_POINTS else "lines"
        figure.add_trace(go.Scatter(x=steps, y=thinned.get(field, []), name=name, mode=mode))
    figure.update_layout(
        title=title, height=320, margin={"l": 40, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.25}, modebar={"orientation": "v"},
    )
    figure.update_xaxes(title_text="step")
    return figure
