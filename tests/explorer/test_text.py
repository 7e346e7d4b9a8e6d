"""Archive text in markdown elements: one inline code span, whose content is the text."""

from __future__ import annotations

import re

import pytest
import support  # noqa: F401  (puts the explorer's modules on the path)
import text


@pytest.mark.parametrize(
    "value",
    [
        "run-1",
        "![img](http://127.0.0.1:9/x.png) <img src=x> http://127.0.0.1:9/ **b**",
        "a `tick` and ``two`` ticks",
        "`starts and ends`",
        "line one\n\n# a heading\r\n- a list\r",
        42,
    ],
)
def test_literal_is_one_code_span_holding_the_text(value):
    shown = text.literal(value)
    assert "\n" not in shown and "\r" not in shown  # one line: no block can start
    fence = re.match(r"`+", shown).group()
    # CommonMark: a code span closes at the first run of exactly as many backticks, and one
    # space is stripped from each side; so the fence must appear nowhere inside.
    assert shown.startswith(fence + " ") and shown.endswith(" " + fence)
    inner = shown[len(fence) + 1 : -len(fence) - 1]
    assert all(len(run) != len(fence) for run in re.findall(r"`+", inner))
    assert inner == re.sub(r"[\r\n]+", " ", str(value))


@pytest.mark.parametrize("value", ["", "   "])
def test_literal_of_blank_text_is_the_text(value):
    assert text.literal(value) == value
