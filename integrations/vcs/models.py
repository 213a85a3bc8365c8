"""Pydantic models of the event payloads Tandem acts on, as the providers document them.

Only the fields Tandem reads are declared; everything else is ignored (providers
add fields all the time), so a payload fails to parse only when a field Tandem
needs is missing or of the wrong type.

GitHub: push (branches and tags), pull_request, issue_comment
(https://docs.github.com/webhooks/webhook-events-and-payloads). GitLab: Push
Hook, Tag Push Hook, Merge Request Hook, Note Hook
(doc/user/project/integrations/webhook_events.md). Bitbucket Cloud: repo:push,
pullrequest:created / updated / fulfilled / rejected, pullrequest:comment_created
(Bitbucket's "Event payloads" page).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- GitHub ------------------------------------------------------------------------------


class GitHubUser(Lenient):
    login: str = ""


class GitHubCommitAuthor(Lenient):
    name: str = ""
    email: str | None = None
    username: str | None = None


class GitHubCommit(Lenient):
    id: str
    message: str = ""
    url: str = ""
    author: GitHubCommitAuthor | None = None


class GitHubRepository(Lenient):
    full_name: str = ""
    html_url: str = ""
    default_branch: str | None = None
    master_branch: str | None = None  # push payloads carry it too


class GitHubPush(Lenient):
    ref: str
    deleted: bool = False
    commits: list[GitHubCommit] = []
    head_commit: GitHubCommit | None = None
    repository: GitHubRepository
    sender: GitHubUser | None = None


class GitHubBranchRef(Lenient):
    ref: str = ""


class GitHubPullRequestBody(Lenient):
    number: int
    html_url: str
    title: str = ""
    body: str | None = None
    state: str = "open"
    merged: bool | None = None
    merged_at: str | None = None
    user: GitHubUser | None = None
    head: GitHubBranchRef | None = None


class GitHubPullRequestEvent(Lenient):
    action: str
    pull_request: GitHubPullRequestBody


class GitHubIssue(Lenient):
    number: int
    title: str = ""
    html_url: str = ""


class GitHubComment(Lenient):
    html_url: str
    body: str | None = ""
    user: GitHubUser | None = None


class GitHubIssueCommentEvent(Lenient):
    action: str
    issue: GitHubIssue
    comment: GitHubComment


# -- GitLab ------------------------------------------------------------------------------


class GitLabAuthor(Lenient):
    name: str = ""
    email: str | None = None


class GitLabCommit(Lenient):
    id: str
    message: str = ""
    title: str | None = None
    url: str = ""
    author: GitLabAuthor | None = None


class GitLabProject(Lenient):
    web_url: str = ""
    path_with_namespace: str = ""
    default_branch: str | None = None


class GitLabPush(Lenient):
    object_kind: Literal["push", "tag_push"]
    ref: str
    user_name: str | None = None
    user_username: str | None = None
    checkout_sha: str | None = None
    project: GitLabProject
    commits: list[GitLabCommit] = []


class GitLabUser(Lenient):
    name: str = ""
    username: str = ""


class GitLabMergeRequestAttributes(Lenient):
    iid: int
    title: str = ""
    description: str | None = None
    url: str
    state: str = "opened"
    action: str | None = None
    source_branch: str = ""
    target_branch: str = ""


class GitLabMergeRequestEvent(Lenient):
    object_kind: Literal["merge_request"]
    user: GitLabUser | None = None
    project: GitLabProject
    object_attributes: GitLabMergeRequestAttributes


class GitLabNoteAttributes(Lenient):
    note: str = ""
    noteable_type: str = ""
    url: str = ""


class GitLabNoted(Lenient):
    title: str = ""


class GitLabNoteEvent(Lenient):
    object_kind: Literal["note"]
    user: GitLabUser | None = None
    object_attributes: GitLabNoteAttributes
    merge_request: GitLabNoted | None = None
    issue: GitLabNoted | None = None
    commit: GitLabCommit | None = None


# -- Bitbucket Cloud ---------------------------------------------------------------------


class BitbucketLink(Lenient):
    href: str = ""


class BitbucketLinks(Lenient):
    html: BitbucketLink | None = None


class BitbucketAccount(Lenient):
    display_name: str = ""
    nickname: str | None = None


class BitbucketCommitAuthor(Lenient):
    raw: str = ""
    user: BitbucketAccount | None = None


class BitbucketCommit(Lenient):
    hash: str
    message: str = ""
    links: BitbucketLinks | None = None
    author: BitbucketCommitAuthor | None = None


class BitbucketRef(Lenient):
    type: str  # "branch" | "tag" | "named_branch" | "bookmark"
    name: str
    target: BitbucketCommit | None = None
    links: BitbucketLinks | None = None


class BitbucketChange(Lenient):
    new: BitbucketRef | None = None
    old: BitbucketRef | None = None
    commits: list[BitbucketCommit] = []


class BitbucketPushBody(Lenient):
    changes: list[BitbucketChange] = []


class BitbucketBranch(Lenient):
    name: str = ""


class BitbucketRepository(Lenient):
    full_name: str = ""
    links: BitbucketLinks | None = None
    mainbranch: BitbucketBranch | None = None


class BitbucketPush(Lenient):
    actor: BitbucketAccount | None = None
    repository: BitbucketRepository
    push: BitbucketPushBody


class BitbucketEndpoint(Lenient):
    branch: BitbucketBranch | None = None


class BitbucketPullRequest(Lenient):
    id: int
    title: str = ""
    description: str | None = None
    state: str = "OPEN"  # OPEN | MERGED | DECLINED | SUPERSEDED
    links: BitbucketLinks | None = None
    author: BitbucketAccount | None = None
    source: BitbucketEndpoint | None = None
    destination: BitbucketEndpoint | None = None


class BitbucketPullRequestEvent(Lenient):
    actor: BitbucketAccount | None = None
    pullrequest: BitbucketPullRequest
    repository: BitbucketRepository | None = None


class BitbucketContent(Lenient):
    raw: str = ""


class BitbucketComment(Lenient):
    content: BitbucketContent | None = None
    links: BitbucketLinks | None = None
    user: BitbucketAccount | None = None


class BitbucketCommentEvent(Lenient):
    actor: BitbucketAccount | None = None
    pullrequest: BitbucketPullRequest
    comment: BitbucketComment
