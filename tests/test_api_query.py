"""The REST list-query parser and runner (pure), with hypothesis."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_server.api.query import MAX_LIMIT, QueryError, parse_list_query, run_query
from sync_server.api.v1 import TASKS

STATUSES = ["todo", "in_progress", "review", "done"]

tasks = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.text(string.ascii_letters, min_size=1, max_size=6),
            "title": st.text(max_size=12),
            "description": st.text(max_size=12),
            "status": st.sampled_from(STATUSES),
            "priority": st.sampled_from(["low", "medium", "high", "urgent"]),
            "due": st.one_of(st.none(), st.dates().map(lambda d: d.isoformat())),
            "assignees": st.lists(st.sampled_from(["ana", "bo", "cy"]), max_size=2),
            "labels": st.lists(st.sampled_from(["x", "y"]), max_size=2),
            "estimate": st.one_of(st.none(), st.floats(0, 100)),
            "order": st.text("abc", max_size=3),
        }
    ),
    max_size=25,
)

args = st.dictionaries(
    st.sampled_from(
        ["limit", "offset", "order_by", "fields", "status", "assignee", "due_before", "q", "x"]
    ),
    st.text(max_size=20),
    max_size=5,
)


@given(args)
@settings(max_examples=300)
def test_any_query_string_parses_or_names_the_bad_parameter(raw: dict[str, str]) -> None:
    try:
        query = parse_list_query(raw, TASKS)
    except QueryError as e:
        assert e.parameter in raw
        assert str(e).startswith(e.parameter + ":")
    else:
        assert 1 <= query.limit <= MAX_LIMIT and query.offset >= 0


@given(
    tasks,
    st.lists(st.sampled_from(["due", "-due", "priority", "-priority", "title"]), max_size=3),
    st.integers(1, 10),
    st.integers(0, 30),
)
def test_paging_through_a_sorted_list_yields_each_item_once(items, order, limit, offset) -> None:
    base = {"order_by": ",".join(order)} if order else {}
    everything = run_query(items, parse_list_query({**base, "limit": "1000"}, TASKS), TASKS)
    assert everything.total == len(items)
    page = run_query(
        items, parse_list_query({**base, "limit": str(limit), "offset": str(offset)}, TASKS), TASKS
    )
    assert page.items == everything.items[offset : offset + limit]
    if order:  # the first key is ordered, with missing values last
        key, descending = order[0].lstrip("-"), order[0].startswith("-")
        values = [i[key] for i in everything.items]
        present = [v for v in values if v not in (None, "")]
        assert values[: len(present)] == present
        rank = {"low": 0, "medium": 1, "high": 2, "urgent": 3}
        keyed = [rank.get(v, v) if key == "priority" else str(v).casefold() for v in present]
        assert keyed == sorted(keyed, reverse=descending)


@given(tasks, st.sampled_from(STATUSES), st.sampled_from(["ana", "bo", "cy"]))
def test_filters_keep_exactly_the_matching_items(items, status, who) -> None:
    query = parse_list_query({"status": status, "assignee": who, "limit": "1000"}, TASKS)
    got = {i["id"] for i in run_query(items, query, TASKS).items}
    want = {i["id"] for i in items if i["status"] == status and who in i["assignees"]}
    assert got == want


def test_fields_select_and_keep_the_id() -> None:
    items = [{"id": "a", "title": "t", "status": "todo"}]
    page = run_query(items, parse_list_query({"fields": "title"}, TASKS), TASKS)
    assert page.items == [{"id": "a", "title": "t"}]


@pytest.mark.parametrize(
    ("raw", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"offset": "x"}, "offset"),
        ({"order_by": "-"}, "order_by"),
        ({"fields": "title,,status"}, "fields"),
        ({"due_after": "31/12/2026"}, "due_after"),
        ({"q": "   "}, "q"),
        ({"status": ","}, "status"),
        ({"sort": "title"}, "sort"),
    ],
)
def test_bad_parameters_are_named(raw, parameter) -> None:
    with pytest.raises(QueryError) as e:
        parse_list_query(raw, TASKS)
    assert e.value.parameter == parameter
