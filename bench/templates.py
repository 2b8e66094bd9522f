"""What templates as files cost per pair: the lookup, the rendering, the per-line screening.

Every judge call looks its template up by ref (a stat of each template
file, re-read only when one changed) and renders it; every line of a file
is screened (criteria resolved, category routed, template checked, label
key made) before it is stored. Each is timed here in process, no model.

    python -m bench.templates --pairs 20000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from app.keys import label_key
from app.labeling.inputs import PairIn
from app.labeling.templating import prepare
from judges.config import config_from_spec
from judges.templates import get_template
from judges.types import ShownPair


def per_item_us(label: str, n: int, work: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for i in range(n):
        work(i)
    micros = (time.perf_counter() - started) / n * 1e6
    print(f"{label}: {micros:.1f} µs per item ({n} items)")
    return micros


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=20_000)
    args = parser.parse_args()
    n = args.pairs
    v1, v2 = get_template("pairwise-v1"), get_template("pairwise-v2")
    shown = ShownPair("What is 17 * 3?", "51, since 17 * 3 = 51.", "41", criteria="concise")
    plain = ShownPair("What is 17 * 3?", "51, since 17 * 3 = 51.", "41")
    per_item_us(
        "get_template by ref (stat of the folder's files)", n, lambda _: get_template(v2.ref)
    )
    per_item_us("render pairwise-v1, plain pair", n, lambda _: v1.render(plain))
    per_item_us("render pairwise-v2 with criteria", n, lambda _: v2.render(shown))
    per_item_us("pairwise-v2 worked examples (2 shots)", n, lambda _: v2.shots(shown))
    config = config_from_spec("anthropic:claude-sonnet-4-5", routes={"math": "pairwise-v2"})
    pairs = [
        PairIn(
            prompt=f"q{i}",
            response_a="a",
            response_b="b",
            criteria="concise",
            metadata={"category": "math" if i % 2 else "chat"},
        )
        for i in range(n)
    ]

    def screen(i: int) -> str:
        pair, routed = prepare(pairs[i], config, 4000)
        return label_key(pair.stored(), routed)

    per_item_us("screen a line (criteria, route, fit, label key)", n, screen)
    per_item_us(
        "label key alone (as before templates)", n, lambda i: label_key(pairs[i].stored(), config)
    )


if __name__ == "__main__":
    main()
