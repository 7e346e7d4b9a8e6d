"""Explorer benchmark: every page's script run on a large archive, cold and warm.

    python bench/explorer.py [--runs 10000] [--long-snapshots 5000] [--db URL]

Builds the large archive of ``bench/query.py`` (or uses ``--db`` if it already holds runs),
then runs each page under Streamlit's AppTest, the same script run a browser triggers: *cold*
with every cache cleared (a fresh server), *warm* on the page's second run. Prints each figure
beside its target: warm <= 1 s, cold <= 3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query import build

from sanctum_store import Archive

APP = Path(__file__).resolve().parents[1] / "explorer" / "app.py"
sys.path.insert(0, str(APP.parent))
from navigation import SCRIPTS as PAGES  # noqa: E402  (the app's own page list)

WARM_TARGET, COLD_TARGET = 1.0, 3.0


def page_times(page: str, repeat: int) -> tuple[float, float, str]:
    """(cold seconds, median warm seconds, error text) of one page's script run."""
    at = AppTest.from_file(str(APP), default_timeout=120).run()  # registers the pages
    st.cache_data.clear()  # then start cold: no cached data, no open engine
    st.cache_resource.clear()
    start = time.perf_counter()
    at.switch_page(page).run()
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeat):
        start = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - start)
    error = "; ".join(str(e.value)[:120] for e in at.exception)
    return cold, statistics.median(warm), error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="an existing archive to use instead of building one")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--long-runs", type=int, default=3)
    parser.add_argument("--long-snapshots", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'explorer-bench.db'}"
        with Archive(url) as archive:
            empty = archive.runs().empty
        if empty:
            start = time.perf_counter()
            build(url, args.runs, args.long_runs, args.long_snapshots)
            print(f"built {args.runs} runs in {time.perf_counter() - start:.0f} s")
        os.environ["SANCTUM_DB"] = url
        print(f"{'page':<24} {'cold s':>8} {'target':>7} {'warm s':>8} {'target':>7}")
        failed = False
        for page in PAGES:
            cold, warm, error = page_times(page, args.repeat)
            ok = cold <= COLD_TARGET and warm <= WARM_TARGET and not error
            failed |= not ok
            print(
                f"{page:<24} {cold:>8.2f} {'<= 3':>7} {warm:>8.2f} {'<= 1':>7}"
                f"{'' if ok else '  MISSED'}{'  ERROR: ' + error if error else ''}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
