"""Review queues: which pairs each kind takes, who is served what, answers, undo, gold."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from app.errors import InvalidInputError, NotFoundError
from app.labeling.review import create, queues
from app.labeling.review.create import QueueSpec
from app.store import review_queues as review_store
from app.store.models_review import ReviewAssignment
from tests.review_seed import Env, PairSpec, force_order


@pytest.fixture
def env(database_url: str) -> Iterator[Env]:
    environment = Env(database_url)
    yield environment
    environment.close()


# name, judge, winner, confidence, consistent, disagreement, batch, same pair as, gold
PAIRS = [
    PairSpec("split", winner="a", disagreement=0.33, batch="b1"),
    PairSpec("split-small", winner="b", disagreement=0.2, batch="b1"),
    PairSpec("unanimous", winner="a", disagreement=0.0, batch="b1"),
    PairSpec("inconsistent", winner="tie", consistent=False, batch="b1"),
    PairSpec("unsure", winner="b", confidence=0.4, batch="b2"),
    PairSpec("sure", winner="b", confidence=0.95, batch="b2"),
    PairSpec("j1", judge="judge-1", winner="a", batch="b2"),
    PairSpec("j2", judge="judge-2", winner="b", same_pair_as="j1", batch="b2"),
    PairSpec("k1", judge="judge-1", winner="a", batch="b2"),
    PairSpec("k2", judge="judge-2", winner="a", same_pair_as="k1", batch="b2"),
    PairSpec("gold", winner="a", gold="a", batch="b2"),
    PairSpec("unjudged", winner=None),
]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"kind": "disagreement"}, {"split", "split-small"}),
        ({"kind": "disagreement", "threshold": 0.3}, {"split"}),
        ({"kind": "inconsistent"}, {"inconsistent"}),
        ({"kind": "low-confidence"}, {"unsure"}),
        ({"kind": "low-confidence", "threshold": 0.99}, None),  # every judged pair but 'none'
        ({"kind": "judges-disagree"}, {"j1"}),
        ({"kind": "no-gold", "batch": "b1"}, {"split", "split-small", "unanimous", "inconsistent"}),
        (
            {"kind": "no-gold"},
            {n.name for n in PAIRS} - {"gold", "j2", "k2"},
        ),
        (
            {"kind": "audit", "batch": "b1", "size": 100},
            {"split", "split-small", "unanimous", "inconsistent"},
        ),
    ],
)
def test_each_kind_selects_its_pairs(
    env: Env, spec: dict[str, Any], expected: set[str] | None
) -> None:
    """Each kind takes the pairs it names, one item per pair, and only those."""
    seeded = env.seed(PAIRS)
    spec = dict(spec)
    batch = spec.pop("batch", None)
    if batch is not None:
        spec["batch_id"] = next(
            s.batch_id for n, s in seeded.items() if n in {"split", "unsure"} and _batch(n) == batch
        )
    queue_id = env.queue(**spec)
    by_id = {s.comparison_id: n for n, s in seeded.items()}
    got = {by_id[item.comparison_id] for item in env.items(queue_id)}
    if expected is None:
        expected = {
            "split",
            "split-small",
            "unanimous",
            "inconsistent",
            "unsure",
            "sure",
            "j1",
            "k1",
            "gold",
        }
    assert got == expected


def _batch(name: str) -> str:
    return next(p.batch for p in PAIRS if p.name == name) or ""


def test_an_audit_sample_is_seeded_and_uniform(env: Env) -> None:
    """The same seed draws the same sample; every pair of the batch is equally likely."""
    env.seed([PairSpec(f"p{i}", batch="big") for i in range(40)])
    seeded = env.seed([PairSpec("other", batch="other")])
    del seeded
    first = env.queue(name="a1", kind="audit", batch_id=_batch_id(env, "big"), size=10, seed=7)
    again = env.queue(name="a2", kind="audit", batch_id=_batch_id(env, "big"), size=10, seed=7)
    other = env.queue(name="a3", kind="audit", batch_id=_batch_id(env, "big"), size=10, seed=8)
    ids = lambda q: [i.comparison_id for i in env.items(q)]  # noqa: E731
    assert ids(first) == ids(again)
    assert len(ids(first)) == 10
    assert ids(first) != ids(other)


def test_an_audit_streams_its_batch_instead_of_loading_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit sample reads the batch as a stream: the batch's id list is never built."""
    twin = PairSpec("twin", judge="judge-2", same_pair_as="p3", batch="big")
    env.seed([*(PairSpec(f"p{i}", batch="big") for i in range(30)), twin])

    def whole_batch(*_: object) -> None:
        raise AssertionError("the audit loaded every candidate of the batch")

    monkeypatch.setattr(create.store, "candidates", whole_batch)
    queue_id = env.queue(name="a", kind="audit", batch_id=_batch_id(env, "big"), size=40)
    items = env.items(queue_id)
    assert len(items) == 30  # one per pair: the twin of p3 is the same pair
    assert len({i.pair_key for i in items}) == 30


def test_the_reservoir_sample_is_uniform_and_seeded() -> None:
    """Every row is drawn about size/n of the time; a seed gives one sample; small batches whole."""

    async def rows(n: int) -> AsyncIterator[tuple[uuid.UUID, str | None]]:
        for i in range(n):
            yield uuid.UUID(int=i), f"k{i}"

    def draw(n: int, size: int, seed: int) -> list[int]:
        found = asyncio.run(create.sample(rows(n), size, seed))
        return [row[0].int for row in found]

    counts = Counter(i for seed in range(2400) for i in draw(12, 3, seed))
    assert sorted(counts) == list(range(12))  # every row can be drawn
    assert all(480 <= c <= 720 for c in counts.values()), counts  # expected 600 each
    assert draw(50, 5, 7) == draw(50, 5, 7)
    assert draw(50, 5, 7) != draw(50, 5, 8)
    assert sorted(draw(4, 10, 1)) == [0, 1, 2, 3]


def _batch_id(env: Env, name: str) -> uuid.UUID:
    from app.store.models import Batch

    async def go(session: Any) -> uuid.UUID:
        found = await session.scalar(select(Batch.id).where(Batch.name == name))
        assert found is not None
        return found

    return env.tx(go)


def test_two_reviewers_with_k2_each_get_every_item_once(env: Env) -> None:
    """k = 2: each reviewer is served every item exactly once, interleaved."""
    env.seed([PairSpec(f"p{i}", disagreement=0.5) for i in range(6)])
    queue_id = env.queue(kind="disagreement", overlap=2)
    seen: dict[str, list[int]] = {"ann": [], "bob": []}
    while True:
        progressed = False
        for reviewer in ("ann", "bob"):
            served = env.next(queue_id, reviewer)
            if served is not None:
                seen[reviewer].append(served.item_id)
                env.answer(served, reviewer, "left")
                progressed = True
        if not progressed:
            break
    items = [i.id for i in env.items(queue_id)]
    assert sorted(seen["ann"]) == items
    assert sorted(seen["bob"]) == items
    assert all(item.done and item.answers == 2 for item in env.items(queue_id))


def test_with_k1_two_reviewers_never_get_the_same_item(env: Env) -> None:
    """k = 1, interleaved: a leased item is not served to the other reviewer; each item once."""
    env.seed([PairSpec(f"p{i}", disagreement=0.5) for i in range(5)])
    queue_id = env.queue(kind="disagreement", overlap=1)
    served_to: dict[int, str] = {}
    held = {r: env.next(queue_id, r) for r in ("ann", "bob")}
    while any(held.values()):
        assert (
            held["ann"] is None or held["bob"] is None or held["ann"].item_id != held["bob"].item_id
        )
        for reviewer, served in list(held.items()):
            if served is None:
                continue
            assert served.item_id not in served_to
            served_to[served.item_id] = reviewer
            env.answer(served, reviewer, "right")
            held[reviewer] = env.next(queue_id, reviewer)
    assert sorted(served_to) == [i.id for i in env.items(queue_id)]


def test_with_k1_concurrent_reviewers_never_get_the_same_item(env: Env) -> None:
    """k = 1, eight reviewers asking at once: eight different items."""
    env.seed([PairSpec(f"p{i}", disagreement=0.5) for i in range(10)])
    queue_id = env.queue(kind="disagreement", overlap=1)

    async def ask(reviewer: str) -> int | None:
        async with env.db.transaction() as session:
            served = await queues.next_item(session, queue_id, reviewer)
        return None if served is None else served.item_id

    async def all_at_once() -> list[int | None]:
        return list(await asyncio.gather(*(ask(f"r{i}") for i in range(8))))

    got = env.run(all_at_once())
    assert None not in got
    assert len(set(got)) == 8


@pytest.mark.parametrize("order", ["ab", "ba"])
@pytest.mark.parametrize(
    ("choice", "if_ab", "if_ba"),
    [("left", "a", "b"), ("right", "b", "a"), ("tie", "tie", "tie")],
)
def test_the_stored_preference_is_the_answer_mapped_through_the_order(
    env: Env, order: str, choice: str, if_ab: str, if_ba: str
) -> None:
    """What is stored is what was pressed, mapped through the order the reviewer saw."""
    seeded = env.seed([PairSpec("p", disagreement=0.5)])
    queue_id = env.queue(kind="disagreement")
    served = env.next(queue_id, "ann")
    assert served is not None
    force_order(env, served.assignment_id, order)
    served = env.next(queue_id, "ann")
    assert served is not None
    a, b = "answer A of p", "answer B of p"
    assert (served.left, served.right) == ((a, b) if order == "ab" else (b, a))
    answered = env.answer(served, "ann", choice)
    expected = if_ab if order == "ab" else if_ba
    assert answered.winner == expected
    [review] = env.golds()
    assert review.winner == expected
    assert review.comparison_id == seeded["p"].comparison_id


def test_the_order_is_stored_per_reviewer_and_item(env: Env) -> None:
    """A reviewer served the same item again sees it in the same order."""
    env.seed([PairSpec("p", disagreement=0.5)])
    queue_id = env.queue(kind="disagreement")
    first = env.next(queue_id, "ann")
    assert first is not None
    for _ in range(5):
        again = env.next(queue_id, "ann")
        assert again is not None
        assert (again.left, again.right) == (first.left, first.right)


def test_undo_takes_back_the_answer_and_its_gold(env: Env) -> None:
    """Undo with k = 1 removes the review written from the answer and serves the item again."""
    env.seed([PairSpec("p", disagreement=0.5), PairSpec("q", disagreement=0.5)])
    queue_id = env.queue(kind="disagreement")
    served = env.next(queue_id, "ann")
    assert served is not None
    env.answer(served, "ann", "left")
    assert len(env.golds()) == 1
    again = env.tx(lambda s: queues.undo_last(s, queue_id, "ann"))
    assert again.item_id == served.item_id
    assert env.golds() == []
    assert env.next(queue_id, "ann").item_id == served.item_id  # type: ignore[union-attr]
    env.answer(again, "ann", "right")
    [review] = env.golds()
    assert review.winner == queues.winner_for(_order(env, again.assignment_id), "right")
    with pytest.raises(NotFoundError):
        env.tx(lambda s: queues.undo_last(s, queue_id, "bob"))


@pytest.mark.parametrize(("minutes_ago", "undone"), [(1, True), (9, True), (11, False)])
def test_undo_is_refused_once_the_answer_is_older_than_the_window(
    env: Env, minutes_ago: int, undone: bool
) -> None:
    """Within UNDO_WINDOW undo deletes the gold it wrote; later the answer and its gold stand."""
    env.seed([PairSpec("p", disagreement=0.5)])
    queue_id = env.queue(kind="disagreement")
    served = env.next(queue_id, "ann")
    assert served is not None
    env.answer(served, "ann", "left")
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)

    async def age(session: Any) -> None:
        row = await session.get(ReviewAssignment, served.assignment_id)
        row.answered_at = when

    env.tx(age)
    if undone:
        env.tx(lambda s: queues.undo_last(s, queue_id, "ann"))
        assert env.golds() == []
    else:
        with pytest.raises(queues.ConflictError, match="stands"):
            env.tx(lambda s: queues.undo_last(s, queue_id, "ann"))
        assert [g.winner for g in env.golds()] == [
            queues.winner_for(_order(env, served.assignment_id), "left")
        ]
        assert env.items(queue_id)[0].done


def _order(env: Env, assignment_id: int) -> str:
    async def go(session: Any) -> str:
        row = await session.get(ReviewAssignment, assignment_id)
        return str(row.shown_order)

    return env.tx(go)


def test_undo_before_k_answers_keeps_the_other_answer(env: Env) -> None:
    """k = 2: undoing the completing answer reopens the item; gold is decided anew."""
    env.seed([PairSpec("p", disagreement=0.5)])
    queue_id = env.queue(kind="disagreement", overlap=2)
    for reviewer in ("ann", "bob"):
        served = env.next(queue_id, reviewer)
        assert served is not None
        force_order(env, served.assignment_id, "ab")
        env.answer(served, reviewer, "left")
    [review] = env.golds()
    assert review.winner == "a"
    assert review.votes == ["a", "a"]
    assert review.reviewer == "ann, bob"
    again = env.tx(lambda s: queues.undo_last(s, queue_id, "bob"))
    assert env.golds() == []
    assert env.items(queue_id)[0].answers == 1
    env.answer(again, "bob", "right")  # ann a, bob b: no majority
    assert env.golds() == []
    assert env.items(queue_id)[0].done


@pytest.mark.parametrize(
    ("presses", "gold"),
    [
        (["left"], "a"),
        (["left", "left"], "a"),
        (["left", "right"], None),
        (["left", "right", "right"], "b"),
        (["tie", "tie", "left"], "tie"),
        (["tie", "left", "right"], None),
    ],
)
def test_gold_is_the_majority_of_k_answers(env: Env, presses: list[str], gold: str | None) -> None:
    """k answers in: gold is the strict majority; no majority, no gold."""
    env.seed([PairSpec("p", disagreement=0.5)])
    queue_id = env.queue(kind="disagreement", overlap=len(presses))
    for n, press in enumerate(presses):
        served = env.next(queue_id, f"r{n}")
        assert served is not None
        force_order(env, served.assignment_id, "ab")
        env.answer(served, f"r{n}", press)
    assert [g.winner for g in env.golds()] == ([gold] if gold else [])
    assert env.items(queue_id)[0].done


def test_a_skip_frees_the_item_for_others(env: Env) -> None:
    """k = 1: a skipped item goes to the next reviewer, and not back to the skipper."""
    env.seed([PairSpec("p", disagreement=0.5)])
    queue_id = env.queue(kind="disagreement")
    served = env.next(queue_id, "ann")
    assert served is not None
    assert env.next(queue_id, "bob") is None
    env.answer(served, "ann", "skip")
    assert env.next(queue_id, "ann") is None
    assert env.next(queue_id, "bob") is not None
    assert env.golds() == []


def test_progress_per_reviewer(env: Env) -> None:
    """list_queues counts items, done, and what is left for this reviewer."""
    env.seed([PairSpec(f"p{i}", disagreement=0.5) for i in range(3)])
    queue_id = env.queue(kind="disagreement", overlap=2)
    served = env.next(queue_id, "ann")
    assert served is not None
    env.answer(served, "ann", "left")
    [mine] = env.tx(lambda s: queues.list_queues(s, "ann"))
    [theirs] = env.tx(lambda s: queues.list_queues(s, "bob"))
    assert (mine.items, mine.done, mine.answered_by_you, mine.left_for_you) == (3, 0, 1, 2)
    assert (theirs.answered_by_you, theirs.left_for_you) == (0, 3)


def test_progress_is_one_statement_and_counts_done_skipped_and_open(env: Env) -> None:
    """The item view's progress: one statement, right after answers, skips and completions."""
    env.seed([PairSpec(f"p{i}", disagreement=0.5) for i in range(4)])
    queue_id = env.queue(kind="disagreement", overlap=2)
    for reviewer, press in [("ann", "left"), ("ann", "skip"), ("bob", "left"), ("bob", "left")]:
        served = env.next(queue_id, reviewer)
        assert served is not None
        env.answer(served, reviewer, press)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(env.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        ann = env.tx(lambda s: review_store.progress(s, queue_id, "ann"))
        bob = env.tx(lambda s: review_store.progress(s, queue_id, "bob"))
    finally:
        event.remove(env.db.engine.sync_engine, "before_cursor_execute", count)
    # ann: p0 answered (done with bob's), p1 skipped; bob: p0 and p1 answered (p1 open, k = 2).
    assert (ann.items, ann.done, ann.answered_by, ann.left_for) == (4, 1, 2, 2)
    assert (bob.items, bob.done, bob.answered_by, bob.left_for) == (4, 1, 2, 2)
    counts = [s for s in statements if "count" in s.lower()]
    assert len(counts) == 2, statements  # one statement per call


def test_bad_specs_name_the_field(env: Env) -> None:
    """An audit without a batch, a taken name: clear errors, nothing stored."""
    env.seed([PairSpec("p", disagreement=0.5)])
    with pytest.raises(InvalidInputError, match="batch"):
        env.queue(name="a", kind="audit")
    with pytest.raises(ValueError, match="threshold"):
        QueueSpec(name="a", kind="audit", threshold=0.2)
    env.queue(kind="disagreement")
    with pytest.raises(InvalidInputError, match="exists"):
        env.queue(kind="disagreement")


def test_an_expired_lease_frees_the_item_even_behind_the_reviewer(env: Env) -> None:
    """k = 1: an item a reviewer walked away from goes to another once the lease expires."""
    env.seed([PairSpec(f"p{i}", disagreement=0.5) for i in range(2)])
    queue_id = env.queue(kind="disagreement")
    first = env.next(queue_id, "ann")
    second = env.next(queue_id, "bob")
    assert first is not None
    assert second is not None
    assert first.item_id != second.item_id
    env.answer(second, "bob", "left")
    assert env.next(queue_id, "bob") is None  # ann's lease still lives

    async def expire(session: Any) -> None:
        row = await session.get(ReviewAssignment, first.assignment_id)
        row.lease_expires_at = datetime.now(UTC) - timedelta(seconds=1)

    env.tx(expire)
    again = env.next(queue_id, "bob")
    assert again is not None
    assert again.item_id == first.item_id
