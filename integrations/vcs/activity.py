"""What a delivery means for tasks: the links to put on them and the keys it closes. Pure.

    push (branch)      each commit naming a key is linked (kind "commit"); a commit on the
                       repository's default branch with a closing word closes that key
    push (tag)         the tag is linked to the keys its commits name (kind "tag")
    pull / merge req.  linked to every key in its title, description or source branch
                       (kind "pull_request" / "merge_request", state open/closed/merged);
                       once merged, it closes those keys
    comment            linked to the keys its text names (kind "issue_comment")

Everything else is a delivery Tandem does not act on (``acted`` False). A payload
of an event Tandem acts on that lacks what it needs raises pydantic's
ValidationError (the server records it and answers 2xx all the same).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .keys import closing_keys, mentioned_keys
from .models import (
    BitbucketCommentEvent,
    BitbucketCommit,
    BitbucketPullRequestEvent,
    BitbucketPush,
    GitHubCommit,
    GitHubIssueCommentEvent,
    GitHubPullRequestEvent,
    GitHubPush,
    GitLabCommit,
    GitLabMergeRequestEvent,
    GitLabNoteEvent,
    GitLabPush,
)

TITLE_LIMIT = 200


@dataclass(frozen=True)
class LinkMention:
    """One link to put on the task with ``key`` (links are matched by url: a later delivery
    about the same pull request updates its state)."""

    key: str
    kind: str
    url: str
    title: str = ""
    author: str = ""
    state: str = ""

    def fields(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "url": self.url,
            "title": self.title,
            "author": self.author,
            "state": self.state,
        }


@dataclass(frozen=True)
class Activity:
    event: str
    acted: bool = False  # an event kind Tandem acts on
    links: tuple[LinkMention, ...] = ()
    closes: tuple[str, ...] = ()
    summary: str = ""

    @property
    def keys(self) -> set[str]:
        return {link.key for link in self.links} | set(self.closes)


@dataclass(frozen=True)
class Delivery:
    provider: str
    event: str
    payload: Any = field(repr=False)


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0][:TITLE_LIMIT]


def _links(keys: Iterable[str], **fields: str) -> list[LinkMention]:
    return [LinkMention(key, **fields) for key in keys]


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _branch(ref: str) -> str | None:
    return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None


def _tag(ref: str) -> str | None:
    return ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else None


# -- GitHub ------------------------------------------------------------------------------


def _github_author(commit: GitHubCommit) -> str:
    author = commit.author
    if author is None:
        return ""
    return author.username or author.name


def github(event: str, payload: Any) -> Activity:
    if event == "push":
        push = GitHubPush.model_validate(payload)
        repo = push.repository
        default = repo.default_branch or repo.master_branch
        commits = list(push.commits) or ([push.head_commit] if push.head_commit else [])
        tag = _tag(push.ref)
        if tag is not None:
            tag_keys = _unique(k for c in commits for k in mentioned_keys(c.message))
            url = f"{repo.html_url}/releases/tag/{tag}" if repo.html_url else tag
            author = push.sender.login if push.sender else ""
            return Activity(
                event,
                True,
                tuple(
                    _links(tag_keys, kind="tag", url=url, title=tag, author=author, state="tagged")
                ),
            )
        branch = _branch(push.ref)
        links: list[LinkMention] = []
        closes: list[str] = []
        for commit in commits:
            links += _links(
                mentioned_keys(commit.message),
                kind="commit",
                url=commit.url,
                title=_first_line(commit.message),
                author=_github_author(commit),
                state=f"pushed to {branch}" if branch else "pushed",
            )
            if branch is not None and not push.deleted and branch == default:
                closes += closing_keys(commit.message)
        return Activity(event, True, tuple(links), _unique(closes))
    if event == "pull_request":
        pr_event = GitHubPullRequestEvent.model_validate(payload)
        pr = pr_event.pull_request
        merged = bool(pr.merged) or (pr.state == "closed" and pr.merged_at is not None)
        state = "merged" if merged else pr.state
        text = "\n".join((pr.title, pr.body or "", pr.head.ref if pr.head else ""))
        keys = mentioned_keys(text)
        links = _links(
            keys,
            kind="pull_request",
            url=pr.html_url,
            title=f"#{pr.number} {pr.title}"[:TITLE_LIMIT],
            author=pr.user.login if pr.user else "",
            state=state,
        )
        return Activity(event, True, tuple(links), tuple(keys) if merged else ())
    if event == "issue_comment":
        comment_event = GitHubIssueCommentEvent.model_validate(payload)
        if comment_event.action == "deleted":
            return Activity(event, True)
        comment = comment_event.comment
        links = _links(
            mentioned_keys(comment.body),
            kind="issue_comment",
            url=comment.html_url,
            title=f"#{comment_event.issue.number} {comment_event.issue.title}"[:TITLE_LIMIT],
            author=comment.user.login if comment.user else "",
            state="commented",
        )
        return Activity(event, True, tuple(links))
    return Activity(event)


# -- GitLab ------------------------------------------------------------------------------


def _gitlab_commit_links(commits: Iterable[GitLabCommit], state: str) -> list[LinkMention]:
    out: list[LinkMention] = []
    for commit in commits:
        out += _links(
            mentioned_keys(commit.message),
            kind="commit",
            url=commit.url,
            title=(commit.title or _first_line(commit.message))[:TITLE_LIMIT],
            author=commit.author.name if commit.author else "",
            state=state,
        )
    return out


def gitlab(event: str, payload: Any) -> Activity:
    kind = payload.get("object_kind") if isinstance(payload, dict) else None
    if event in ("Push Hook", "Tag Push Hook") or kind in ("push", "tag_push"):
        push = GitLabPush.model_validate(payload)
        tag = _tag(push.ref)
        if push.object_kind == "tag_push" or tag is not None:
            name = tag or push.ref
            tag_keys = _unique(k for c in push.commits for k in mentioned_keys(c.message))
            url = f"{push.project.web_url}/-/tags/{name}" if push.project.web_url else name
            author = push.user_username or push.user_name or ""
            return Activity(
                event,
                True,
                tuple(
                    _links(tag_keys, kind="tag", url=url, title=name, author=author, state="tagged")
                ),
            )
        branch = _branch(push.ref)
        links = _gitlab_commit_links(push.commits, f"pushed to {branch}" if branch else "pushed")
        closes: list[str] = []
        if branch is not None and branch == push.project.default_branch:
            for commit in push.commits:
                closes += closing_keys(commit.message)
        return Activity(event, True, tuple(links), _unique(closes))
    if event == "Merge Request Hook" or kind == "merge_request":
        mr_event = GitLabMergeRequestEvent.model_validate(payload)
        mr = mr_event.object_attributes
        merged = mr.state == "merged" or mr.action == "merge"
        text = "\n".join((mr.title, mr.description or "", mr.source_branch))
        keys = mentioned_keys(text)
        links = _links(
            keys,
            kind="merge_request",
            url=mr.url,
            title=f"!{mr.iid} {mr.title}"[:TITLE_LIMIT],
            author=mr_event.user.username if mr_event.user else "",
            state="merged" if merged else mr.state,
        )
        return Activity(event, True, tuple(links), tuple(keys) if merged else ())
    if event in ("Note Hook", "Confidential Note Hook") or kind == "note":
        note = GitLabNoteEvent.model_validate(payload)
        noted = note.merge_request or note.issue
        title = noted.title if noted else (note.commit.title or "" if note.commit else "")
        links = _links(
            mentioned_keys(note.object_attributes.note),
            kind="issue_comment",
            url=note.object_attributes.url,
            title=title[:TITLE_LIMIT],
            author=note.user.username if note.user else "",
            state="commented",
        )
        return Activity(event, True, tuple(links))
    return Activity(event)


# -- Bitbucket ---------------------------------------------------------------------------


def _bitbucket_url(links: Any) -> str:
    html = getattr(links, "html", None)
    return html.href if html is not None else ""


def _bitbucket_author(commit: BitbucketCommit) -> str:
    author = commit.author
    if author is None:
        return ""
    if author.user is not None:
        return author.user.nickname or author.user.display_name
    return author.raw.split("<", 1)[0].strip()


def bitbucket(event: str, payload: Any) -> Activity:
    if event == "repo:push":
        push = BitbucketPush.model_validate(payload)
        mainbranch = push.repository.mainbranch.name if push.repository.mainbranch else None
        default_branches = {mainbranch} if mainbranch else {"main", "master"}
        links: list[LinkMention] = []
        closes: list[str] = []
        for change in push.push.changes:
            new = change.new
            if new is None:  # a branch or tag deleted
                continue
            commits = list(change.commits) or ([new.target] if new.target else [])
            if new.type == "tag":
                tag_keys = _unique(k for c in commits for k in mentioned_keys(c.message))
                url = _bitbucket_url(new.links) or new.name
                actor = push.actor
                author = (actor.nickname or actor.display_name) if actor else ""
                links += _links(
                    tag_keys,
                    kind="tag",
                    url=url,
                    title=new.name,
                    author=author or "",
                    state="tagged",
                )
                continue
            for commit in commits:
                links += _links(
                    mentioned_keys(commit.message),
                    kind="commit",
                    url=_bitbucket_url(commit.links),
                    title=_first_line(commit.message),
                    author=_bitbucket_author(commit),
                    state=f"pushed to {new.name}",
                )
                if new.name in default_branches:
                    closes += closing_keys(commit.message)
        return Activity(event, True, tuple(links), _unique(closes))
    if event.startswith("pullrequest:") and event != "pullrequest:comment_created":
        if event.startswith("pullrequest:comment_"):
            return Activity(event)
        pr_event = BitbucketPullRequestEvent.model_validate(payload)
        pr = pr_event.pullrequest
        merged = pr.state == "MERGED" or event == "pullrequest:fulfilled"
        branch = pr.source.branch.name if pr.source and pr.source.branch else ""
        keys = mentioned_keys("\n".join((pr.title, pr.description or "", branch)))
        links = _links(
            keys,
            kind="pull_request",
            url=_bitbucket_url(pr.links),
            title=f"#{pr.id} {pr.title}"[:TITLE_LIMIT],
            author=(pr.author.nickname or pr.author.display_name) if pr.author else "",
            state="merged" if merged else pr.state.lower(),
        )
        return Activity(event, True, tuple(links), tuple(keys) if merged else ())
    if event == "pullrequest:comment_created":
        comment_event = BitbucketCommentEvent.model_validate(payload)
        comment = comment_event.comment
        who = comment.user or comment_event.actor
        links = _links(
            mentioned_keys(comment.content.raw if comment.content else ""),
            kind="issue_comment",
            url=_bitbucket_url(comment.links) or _bitbucket_url(comment_event.pullrequest.links),
            title=f"#{comment_event.pullrequest.id} {comment_event.pullrequest.title}"[
                :TITLE_LIMIT
            ],
            author=(who.nickname or who.display_name) if who else "",
            state="commented",
        )
        return Activity(event, True, tuple(links))
    return Activity(event)


def activity_of(provider: str, event: str, payload: Any) -> Activity:
    """What ``payload`` (a provider's delivery of ``event``) means for tasks."""
    if provider == "github":
        return github(event, payload)
    if provider == "gitlab":
        return gitlab(event, payload)
    if provider == "bitbucket":
        return bitbucket(event, payload)
    raise ValueError(f"unknown provider {provider!r}")
