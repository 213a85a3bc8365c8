"""Project metrics from snapshots and the activity stream. Pure: data in, numbers out.

Definitions (the API documents them too):
- done: a task in the project's last column ("done" by default)
- overdue: not done, with a due date before today
- burndown: for each day of the window, tasks that existed at the end of the
  day and were not done by then (done = the time the task last entered the
  done column, from the activity stream; tasks done before the stream existed
  count as done from their creation)
- velocity: tasks that entered the done column per ISO week (Monday start)
- budget burn: cumulative costs by date against a straight-line plan from the
  project's start to its end date
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from doc_model import Finance, Project, Task


def done_column(project: Project) -> str:
    return project.columns[-1] if project.columns else "done"


def _created_day(task: Task, fallback: dt.date) -> dt.date:
    return task.created_at.date() if task.created_at else fallback


def _day(timestamp: float) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).date()


def task_metrics(
    project: Project, completed: dict[str, float], today: dt.date, days: int = 30
) -> dict[str, Any]:
    done = done_column(project)
    tasks = project.tasks
    by_status = Counter(t.status for t in tasks)
    counts = {column: by_status.get(column, 0) for column in project.columns}
    counts.update({s: n for s, n in by_status.items() if s not in counts})
    finished = [t for t in tasks if t.status == done]
    overdue = [t for t in tasks if t.status != done and t.due is not None and t.due < today]
    start = today - dt.timedelta(days=days - 1)

    def done_day(task: Task) -> dt.date | None:
        if task.status != done:
            return None
        when = completed.get(task.id)
        return _day(when) if when is not None else _created_day(task, start)

    finished_on = {t.id: done_day(t) for t in tasks}
    burndown = []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        remaining = sum(
            1
            for t in tasks
            if _created_day(t, start) <= day and not ((d := finished_on[t.id]) and d <= day)
        )
        burndown.append({"date": day.isoformat(), "remaining": remaining})
    weeks: Counter[str] = Counter()
    for task_id, when in completed.items():
        if finished_on.get(task_id) is None:
            continue
        year, week, _ = _day(when).isocalendar()
        weeks[f"{year}-W{week:02d}"] += 1
    this_monday = today - dt.timedelta(days=today.weekday())
    velocity = []
    for back in range(7, -1, -1):
        monday = this_monday - dt.timedelta(weeks=back)
        year, week, _ = monday.isocalendar()
        label = f"{year}-W{week:02d}"
        velocity.append({"week": label, "start": monday.isoformat(), "done": weeks.get(label, 0)})
    estimate_total = sum(t.estimate or 0 for t in tasks)
    estimate_done = sum(t.estimate or 0 for t in finished)
    return {
        "total": len(tasks),
        "done": len(finished),
        "completion": round(len(finished) / len(tasks), 4) if tasks else 0.0,
        "overdue": len(overdue),
        "by_status": counts,
        "estimate_total": estimate_total,
        "estimate_done": estimate_done,
        "burndown": burndown,
        "velocity": velocity,
    }


def budget_burn(project: Project, finance: Finance, today: dt.date) -> dict[str, Any]:
    total = finance.budget.total
    by_day: defaultdict[dt.date, float] = defaultdict(float)  # amounts are floats
    undated = 0.0
    for cost in finance.costs:
        if cost.date is None:
            undated += cost.amount
        else:
            by_day[cost.date] += cost.amount
    spent = undated + sum(by_day.values())
    start, end = project.meta.start_date, project.meta.end_date
    planned_to_date: float | None = None
    if total is not None and start and end and end > start:
        elapsed = min(max((today - start).days, 0), (end - start).days)
        planned_to_date = round(total * elapsed / (end - start).days, 2)
    series = []
    running = undated
    for day in sorted(by_day):
        running += by_day[day]
        planned = None
        if total is not None and start and end and end > start:
            elapsed = min(max((day - start).days, 0), (end - start).days)
            planned = round(total * elapsed / (end - start).days, 2)
        series.append({"date": day.isoformat(), "spent": round(running, 2), "planned": planned})
    return {
        "currency": finance.budget.currency,
        "total": total,
        "spent": round(spent, 2),
        "remaining": round(total - spent, 2) if total is not None else None,
        "planned_to_date": planned_to_date,
        "burn": series,
    }
