"""What the journalled tasks cost: per task, per day, per 30 days; and the daily spend guard.

A task counts from the moment its creation request may have left (sending, uncertain) until
it fails (Kling does not bill a failed task) or was refused. Its amount is the actual charge
when the server reported one (Kling's final_unit_deduction), else the estimate at the user's
rates, the upper end of the range for a base edit of unknown length: the guard errs on the
side of stopping early.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Optional

from .errors import SpendLimitReached
from .journal import BILLABLE, Job
from .pricing import Cost, Rates, actual_usd, cost, money

RETENTION_DAYS = 30  # Kling deletes results after this long
EXPIRY_WARNING_DAYS = 25  # from then on a task not on disk is marked as about to be lost


def job_cost(job: Job, rates: Rates) -> Optional[Cost]:
    """The task's Cost, or None when the journal does not know what it was (collected by id)."""
    if not job.mode:
        return None
    try:
        return cost(job.mode, job.seconds, bool(job.video_input), rates, model=job.model, sound=bool(job.sound),
                    shots=job.shots)
    except ValueError:  # a model or mode this version does not price
        return None


def job_usd(job: Job, rates: Rates) -> float:
    """What the task counts for against the budget (0 when it is not billed)."""
    if job.state not in BILLABLE:
        return 0.0
    actual = actual_usd(job.unit_deduction, rates) if job.unit_deduction else None
    if actual is not None:
        return actual
    estimate = job_cost(job, rates)
    return estimate.usd_high if estimate is not None else 0.0


@dataclass(frozen=True)
class Totals:
    tasks: int = 0
    seconds: dict = field(default_factory=dict)  # mode -> billed seconds (known lengths only)
    usd: float = 0.0

    def as_dict(self) -> dict:
        return {"tasks": self.tasks, "seconds": dict(self.seconds), "usd": round(self.usd, 4)}


def counted_totals(groups: Iterable[tuple], rates: Rates) -> Totals:
    """Totals over (job, count) pairs: `count` tasks that bill like `job` (Journal.billing)."""
    tasks, usd, seconds = 0, 0.0, {}
    for job, count in groups:
        if job.state not in BILLABLE:
            continue
        tasks += count
        usd += count * job_usd(job, rates)
        if job.mode and job.seconds is not None:
            seconds[job.mode] = seconds.get(job.mode, 0.0) + count * round(job.seconds)
    return Totals(tasks, seconds, usd)


def spent_today(journal, rates: Rates, now: Optional[float] = None, *, since: Optional[float] = None) -> float:
    """What today's tasks count for against the daily limit (`day_start`'s day, or from `since` when the
    caller has it already)."""
    return counted_totals(journal.billing(day_start(journal, now) if since is None else since), rates).usd


@dataclass(frozen=True)
class RecentTotals:
    today: Totals
    last_30_days: Totals


def recent_totals(journal, rates: Rates, now: Optional[float] = None) -> RecentTotals:
    """Today's and the last RETENTION_DAYS days' totals; quick over many thousand rows (SQL groups them)."""
    now = time.time() if now is None else now
    return RecentTotals(counted_totals(journal.billing(day_start(journal, now)), rates),
                        counted_totals(journal.billing(days_ago(RETENTION_DAYS, now)), rates))


def day_start(journal, now: Optional[float] = None) -> float:
    """When the daily limit's 'today' began, as Unix seconds, for `journal` (or one of its decisions). A shared
    journal says it (kling_omni.pg_journal: midnight in its database's time zone, one day for every machine);
    on this machine's own journal it is local midnight."""
    now = time.time() if now is None else now
    shared = getattr(journal, "start_of_day", None)  # only the shared journal and its decisions have it
    return shared(now) if shared is not None else start_of_day(now)


def start_of_day(now: Optional[float] = None) -> float:
    """Local midnight of today, as Unix seconds: 'today' is the user's day, not UTC's."""
    today = datetime.fromtimestamp(time.time() if now is None else now).date()
    return datetime.combine(today, datetime.min.time()).timestamp()


def days_ago(days: int, now: Optional[float] = None) -> float:
    moment = datetime.fromtimestamp(time.time() if now is None else now) - timedelta(days=days)
    return moment.timestamp()


def check_daily_limit(spent_today: float, new: list, limit_usd: float, *, node: str) -> None:
    """Raise SpendLimitReached if `new` Costs would take today's spend past the daily limit (0 = off).

    Only intents not journalled yet are passed in: a journalled one costs nothing again.
    """
    if limit_usd <= 0 or not new:
        return
    adding = sum(c.usd_high for c in new)
    if spent_today + adding <= limit_usd + 1e-9:
        return
    what = new[0].text if len(new) == 1 else f"{len(new)} tasks ({', '.join(sorted({c.label for c in new}))}) " \
                                               f"≈ {money(adding)}"
    raise SpendLimitReached(
        f"{node}: this would cross your daily limit. Today's spend is ≈ {money(spent_today)}, this "
        f"{'task' if len(new) == 1 else 'batch'} costs {what}, and the limit is {money(limit_usd)}, leaving "
        f"{money(max(0.0, limit_usd - spent_today))}. Nothing was sent to CometAPI. Raise or turn off the limit "
        f"in Settings › CometAPI › Spending (0 = no limit), or wait until tomorrow.",
        spent=spent_today, adding=adding, limit=limit_usd)
