"""Problems logged once while they last; loops that outlive their failures."""

from __future__ import annotations

import asyncio
import logging

import pytest

from relay.upkeep import Problems, forever

logger = logging.getLogger("relay.upkeep_test")


def test_a_problem_is_logged_when_it_appears_or_changes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger.name)
    problems = Problems(logger, "store: ")
    assert problems.report("a.json is damaged", "a")
    assert not problems.report("a.json is damaged", "a")
    assert problems.report("b.json is missing", "b")
    assert problems.report("a.json is empty", "a")
    assert dict(problems) == {"a": "a.json is empty", "b": "b.json is missing"}
    problems.keep_only({"a"})
    assert problems.resolve("a") == "a.json is empty" and problems.resolve("a") is None
    assert problems.report("a.json is empty", "a")  # back after it was solved: logged again
    assert [r.getMessage() for r in caplog.records] == [
        "store: a.json is damaged", "store: b.json is missing", "store: a.json is empty", "store: a.json is empty",
    ]


def test_an_outage_is_logged_once_whatever_its_requests_say(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger.name)
    outage = Problems(logger, again_when_changed=False)
    assert outage.report("listing: timed out") and not outage.report("reading x: timed out")
    assert outage.get("") == "reading x: timed out"
    assert [r.getMessage() for r in caplog.records] == ["listing: timed out"]


@pytest.mark.asyncio
async def test_a_failing_round_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger.name)
    rounds: list[int] = []

    class Quiet(Exception):
        pass

    async def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("first round")
        if len(rounds) == 2:
            raise Quiet("told elsewhere")

    task = asyncio.ensure_future(forever("the chore", work, 0.001, logger, reported=(Quiet,)))
    while len(rounds) < 4:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r.getMessage() for r in caplog.records] == ["the chore failed"]
    assert caplog.records[0].exc_info is not None
