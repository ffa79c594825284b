"""Inline SVG charts: well-formed, escaped, gaps for missing values, sensible scales."""

from xml.etree import ElementTree

import pytest

from core.charts import Series, count_scale, line_chart, stacked_bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 4), (1, 4), (4, 4), (5, 8), (7, 8), (9, 20), (41, 80), (99, 100), (240, 400), (999, 1000)],
)
def test_count_axes_have_four_whole_steps(value, top):
    assert count_scale(value) == top
    assert (top / 4) == int(top / 4)


def test_line_chart_draws_one_line_per_series_and_escapes_text():
    svg = line_chart(
        title="Lines <per> day & more",
        x_labels=["11-26", "11-27", "11-28"],
        series=[Series("Sent", [1, 2, 3]), Series('Opted "out"', [0, None, 1])],
    )
    root = parse(svg)  # well-formed: every text is escaped
    assert root.find(f"{SVG}title").text == "Lines <per> day & more"
    polylines = root.findall(f"{SVG}polyline")
    # "Sent" is one line; the other has a gap (None), so no segment of two points.
    assert len(polylines) == 1
    dots = root.findall(f"{SVG}circle")
    assert len(dots) == 5
    assert dots[0].find(f"{SVG}title").text == "11-26 · Sent: 1"
    legend = [text.text for text in root.iter(f"{SVG}text")]
    assert "Sent" in legend and 'Opted "out"' in legend


def test_percent_chart_is_scaled_to_100():
    svg = line_chart(title="Rates", x_labels=["a"], series=[Series("Open", [42.5])], percent=True)
    texts = [text.text for text in parse(svg).iter(f"{SVG}text")]
    assert "100%" in texts and "0%" in texts
    assert "a · Open: 42.5%" in svg


def test_stacked_bars_add_up():
    svg = stacked_bar_chart(
        title="By channel",
        x_labels=["d1", "d2"],
        series=[Series("Email", [3, 0]), Series("SMS", [1, 2])],
    )
    rects = [r for r in parse(svg).iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert [r.find(f"{SVG}title").text for r in rects] == [
        "d1 · Email: 3",
        "d1 · SMS: 1",
        "d2 · SMS: 2",
    ]
    heights = [float(r.get("height")) for r in rects]
    # The scale's top is 4 for a tallest bar of 4: the whole plot height.
    assert heights[0] + heights[1] == pytest.approx(200, abs=0.2)


def test_empty_data_still_draws_a_frame():
    root = parse(line_chart(title="Nothing", x_labels=[], series=[]))
    assert root.find(f"{SVG}title").text == "Nothing"
