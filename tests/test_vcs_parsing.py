"""Task keys and closing words in commit messages, signatures, and the providers' payload
models: properties (hypothesis) and the documented examples, without a server."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from integrations.vcs import activity_of, closing_keys, mentioned_keys, sign_github, verify
from integrations.vcs.signatures import delivery_id

DATA = Path(__file__).parent / "data"

prefixes = st.from_regex(r"[A-Z][A-Z0-9]{1,5}", fullmatch=True)
keys = st.builds(lambda p, n: f"{p}-{n}", prefixes, st.integers(1, 10**9))
closing_words = st.sampled_from(
    ["fix", "fixes", "fixed", "close", "closes", "closed", "resolve", "resolves", "resolved"]
).flatmap(lambda w: st.sampled_from([w, w.upper(), w.capitalize()]))
# words that are neither keys nor closing words (lower-case, so they never look like keys)
filler = st.lists(
    st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(
        lambda w: (
            w not in {"fix", "fixes", "fixed", "close", "closes", "closed"}
            and not w.startswith("resolve")
        )
    ),
    max_size=6,
).map(" ".join)


@given(
    st.lists(
        st.tuples(
            filler,
            closing_words,
            st.lists(keys, min_size=1, max_size=3),
            st.sampled_from([", ", " and ", " & "]),
            st.booleans(),
        ),
        max_size=4,
    ),
    filler,
)
def test_closing_words_close_exactly_the_keys_they_name(parts, tail) -> None:
    text, expected = "", []
    for before, word, named, joiner, colon in parts:
        text += f"{before} {word}{':' if colon else ''} {joiner.join(named)}. "
        expected += named
    text += tail
    assert closing_keys(text) == list(dict.fromkeys(expected))
    assert set(closing_keys(text)) <= set(mentioned_keys(text))


@given(filler, keys, filler)
def test_a_key_merely_named_is_mentioned_but_not_closed(before, key, after) -> None:
    text = f"{before} see {key} {after}"
    assert mentioned_keys(text) == [key]
    assert closing_keys(text) == []


@given(keys, st.sampled_from(["X", "x", "1", "_", "-"]), st.sampled_from(["a", "9x", "_b"]))
def test_a_key_inside_a_longer_word_is_no_key(key, glue, suffix) -> None:
    assert mentioned_keys(f"fixes {glue}{key}") == [] or glue == "X"
    assert key not in mentioned_keys(f"fixes {key}{suffix}")
    assert key not in closing_keys(f"fixes {key}{suffix}")


@given(keys)
def test_keys_in_branch_names_and_punctuation_are_found(key) -> None:
    for text in (f"feature/{key}-login", f"({key})", f"[{key}]", f"{key}: title", f"{key}."):
        assert mentioned_keys(text) == [key], text


@given(st.text(max_size=300))
def test_parsing_any_text_never_fails_and_finds_only_keys(text) -> None:
    from doc_model.task_keys import valid_key

    assert all(valid_key(k) for k in mentioned_keys(text))
    assert set(closing_keys(text)) <= set(mentioned_keys(text))


@given(
    st.binary(max_size=2000), st.text(min_size=1, max_size=64), st.binary(min_size=1, max_size=8)
)
def test_a_signature_holds_for_its_body_and_secret_only(body, secret, extra) -> None:
    signed = {"X-Hub-Signature-256": sign_github(secret, body)}
    assert verify("github", secret, signed, body)
    assert not verify("github", secret, signed, body + extra)
    assert not verify("github", secret + "x", signed, body)
    assert not verify("github", secret, {}, body)
    assert verify("bitbucket", secret, {"x-hub-signature": sign_github(secret, body)}, body)
    assert verify("gitlab", secret, {"X-Gitlab-Token": secret}, body)
    assert not verify("gitlab", secret, {"X-Gitlab-Token": secret + "x"}, body)


def test_delivery_ids_come_from_each_providers_header_else_from_the_body() -> None:
    body = b"{}"
    assert delivery_id("github", {"X-GitHub-Delivery": "abc"}, body) == "abc"
    assert delivery_id("gitlab", {"X-Gitlab-Event-UUID": "u1"}, body) == "u1"
    assert delivery_id("bitbucket", {"X-Request-UUID": "r1", "X-Hook-UUID": "h"}, body) == "r1"
    # the hook's uuid names the hook, not the delivery: two bodies are two deliveries
    assert delivery_id("bitbucket", {"X-Hook-UUID": "h"}, b"1") != delivery_id(
        "bitbucket", {"X-Hook-UUID": "h"}, b"2"
    )
    assert delivery_id("github", {}, body).startswith("sha256:")


def test_the_documented_gitlab_and_bitbucket_examples_parse() -> None:
    cases = [
        ("gitlab", "Push Hook", "push_hook.json"),
        ("gitlab", "Tag Push Hook", "tag_push_hook.json"),
        ("gitlab", "Merge Request Hook", "merge_request_hook.json"),
        ("gitlab", "Note Hook", "note_hook_merge_request.json"),
        ("bitbucket", "repo:push", "repo_push.json"),
        ("bitbucket", "pullrequest:fulfilled", "pullrequest_fulfilled.json"),
        ("bitbucket", "pullrequest:comment_created", "pullrequest_comment_created.json"),
    ]
    for provider, event, name in cases:
        payload = json.loads((DATA / provider / name).read_text())
        activity = activity_of(provider, event, payload)
        assert activity.acted, name
        assert activity.links == () and activity.closes == (), name  # they name no key


def test_a_merge_request_merged_closes_and_one_opened_only_links() -> None:
    payload = json.loads((DATA / "gitlab" / "merge_request_hook.json").read_text())
    payload["object_attributes"]["description"] = "Implements TDM-7, see also TDM-8"
    opened = activity_of("gitlab", "Merge Request Hook", payload)
    assert [link.key for link in opened.links] == ["TDM-7", "TDM-8"]
    assert opened.closes == ()
    payload["object_attributes"]["state"] = "merged"
    merged = activity_of("gitlab", "Merge Request Hook", payload)
    assert merged.closes == ("TDM-7", "TDM-8")
    assert {link.state for link in merged.links} == {"merged"}


def test_gitlab_closes_only_on_the_default_branch() -> None:
    payload = json.loads((DATA / "gitlab" / "push_hook.json").read_text())
    payload["commits"][0]["message"] = "Fixes TDM-1"
    assert activity_of("gitlab", "Push Hook", payload).closes == ("TDM-1",)
    payload["ref"] = "refs/heads/topic"
    other = activity_of("gitlab", "Push Hook", payload)
    assert other.closes == () and [link.key for link in other.links] == ["TDM-1"]
