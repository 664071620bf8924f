"""The lanes: a test is marked by the fixtures it uses, and the unit lane never starts Kafka.

Small pytest sessions (pytester, in-process) load the suite's own hooks and `kafka`
fixture, with stand-ins for `world` and `browser` that depend on them as the real ones do.
"""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest

from tests.conftest import (  # the suite's own marking hooks and session Kafka
    kafka,
    pytest_collection_modifyitems,
    pytest_runtest_setup,
)


@pytest.fixture(scope="session")
def world(kafka):
    return kafka


@pytest.fixture
def browser():
    return "chromium"
"""

TESTS = """
import pytest


def test_plain():
    pass


def test_on_the_federation(world):
    pass


def test_on_the_cluster(kafka):
    pass


def test_in_a_browser(browser):
    pass


@pytest.mark.kafka
def test_marked_by_hand():
    pass


def test_asks_late(request):
    request.getfixturevalue("kafka")
"""

UNIT_LANE = "not kafka and not browser"
#: the inner sessions need no plugin of the suite's beyond pytest's own
QUIET = ("-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:hypothesispytest")


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_lane=TESTS)
    return pytester


@pytest.fixture
def lanes(suite: pytest.Pytester) -> dict[str, set[str]]:
    """Each collected test by the markers it ends up with."""
    items, _ = suite.inline_genitems(*QUIET)
    marks: dict[str, set[str]] = {}
    for item in items:
        for marker in item.iter_markers():
            marks.setdefault(marker.name, set()).add(item.name)
    marks["unit"] = (
        {i.name for i in items} - marks.get("kafka", set()) - marks.get("browser", set())
    )
    return marks


def test_a_test_using_kafka_through_any_fixture_is_in_the_kafka_lane(
    lanes: dict[str, set[str]],
) -> None:
    assert lanes["kafka"] == {
        "test_on_the_federation",
        "test_on_the_cluster",
        "test_marked_by_hand",
    }


def test_a_test_using_the_browser_is_in_the_browser_lane(lanes: dict[str, set[str]]) -> None:
    assert lanes["browser"] == {"test_in_a_browser"}


def test_the_unit_lane_holds_only_what_needs_neither(lanes: dict[str, set[str]]) -> None:
    assert lanes["unit"] == {"test_plain", "test_asks_late"}


def test_the_session_kafka_refuses_a_test_not_marked_kafka(suite: pytest.Pytester) -> None:
    # Refused before anything starts: no broker, no Java (the unit lane runs without them).
    result = suite.runpytest(*QUIET, "-m", UNIT_LANE, "-k", "asks_late")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*test_asks_late is not marked kafka but asked for the session Kafka*"]
    )
