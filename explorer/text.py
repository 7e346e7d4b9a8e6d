"""Text from the archive, shown as typed: never as markdown, a link, an image or HTML.

Streamlit reads most strings as GitHub-flavoured markdown: titles, captions, alerts, metric
labels and values, widget labels, radio options. Escaping is not enough there, since bare URLs
are linked even when escaped. Archive text goes into such an element only as :func:`literal`,
an inline code span, whose content markdown shows literally. Longer text from the archive
(verdicts, messages) goes to ``st.text``, which parses nothing.
"""

from __future__ import annotations

import re

# A line break ends a code span's paragraph (a blank line) or starts a block (a heading, a
# list, a fence) on the next line: a literal stays on one line.
_LINE_BREAKS = re.compile(r"[\r\n]+")
_BACKTICKS = re.compile(r"`+")


def literal(value: object) -> str:
    """``value`` as markdown that shows it as typed, on one line, in any markdown element."""
    text = _LINE_BREAKS.sub(" ", str(value))
    if not text.strip():
        return text  # spaces, or nothing: no markdown in them, and no code span either
    # The fence is longer than any run of backticks inside; the spaces beside it are
    # stripped by the markdown parser, and let the text start or end with a backtick.
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    return f"{fence} {text} {fence}"
