"""What journalled tasks cost, and the daily spend guard's arithmetic and words."""

import time
from dataclasses import replace

import pytest

from kling_omni import ledger
from kling_omni.errors import SpendLimitReached
from kling_omni.journal import Job
from kling_omni.pricing import DEFAULT_RATES, cost

NOW = time.time()


def job(state="succeeded", mode="pro", seconds=5.0, video_input=0, units="", created=NOW):
    return Job(fingerprint="f", attempt=1, external_task_id="e", task_id="1", state=state, prompt="",
               base_url="", node_id="", created_at=created, updated_at=created, video_url="", video_path="",
               unit_deduction=units, message="", mode=mode, seconds=seconds, video_input=video_input)


def test_what_counts_against_the_budget():
    rates = DEFAULT_RATES
    assert ledger.job_usd(job(), rates) == pytest.approx(0.56)
    assert ledger.job_usd(job(units="4"), rates) == pytest.approx(0.56)  # actual: 4 units x $0.14
    assert ledger.job_usd(job(units="5"), replace(rates, usd_per_unit=0.2)) == pytest.approx(1.0)
    assert ledger.job_usd(job(state="uncertain"), rates) == pytest.approx(0.56)  # may have been billed
    assert ledger.job_usd(job(state="failed"), rates) == 0.0
    assert ledger.job_usd(job(state="rejected"), rates) == 0.0
    assert ledger.job_usd(job(seconds=None, video_input=1), rates) == pytest.approx(1.68)  # a base edit: worst case
    assert ledger.job_usd(job(mode=""), rates) == 0.0  # collected by id: unknown


def test_totals_per_mode():
    jobs = [job(), job(mode="std", seconds=10.0), job(state="failed"), job(seconds=None, video_input=1)]
    result = ledger.counted_totals(((job, 1) for job in jobs), DEFAULT_RATES)
    assert result.tasks == 3
    assert result.seconds == {"pro": 5, "std": 10}
    assert result.usd == pytest.approx(0.56 + 0.84 + 1.68)


def test_the_guard_passes_below_the_limit_and_when_off():
    five_pro = cost("pro", 5, False)
    ledger.check_daily_limit(9.0, [five_pro], 10.0, node="CometOmniSubmit #3")
    ledger.check_daily_limit(1e6, [five_pro], 0.0, node="CometOmniSubmit #3")  # 0 = off
    ledger.check_daily_limit(9.99, [], 10.0, node="CometOmniSubmit #3")  # nothing new: journalled intents pass


def test_the_guard_names_every_number_and_where_to_change_it():
    with pytest.raises(SpendLimitReached) as caught:
        ledger.check_daily_limit(9.80, [cost("pro", 5, False)], 10.0, node="CometOmniSubmit #3")
    text = str(caught.value)
    for part in ("CometOmniSubmit #3", "≈ $9.80", "5 s · pro ≈ $0.56", "$10.00", "Nothing was sent",
                 "Settings › CometAPI › Spending"):
        assert part in text
    with pytest.raises(SpendLimitReached) as batch:
        ledger.check_daily_limit(0.0, [cost("pro", 5, False)] * 4, 2.0, node="CometOmniSubmit #3")
    assert "4 tasks" in str(batch.value) and "≈ $2.24" in str(batch.value)


def test_today_is_the_local_day():
    start = ledger.start_of_day(NOW)
    assert start <= NOW < start + 86400 + 3600  # a DST day can be 25 h
    assert time.localtime(start).tm_hour == 0 and time.localtime(start).tm_min == 0


def test_grouped_rows_count_as_many_tasks(tmp_path):
    from kling_omni.journal import Journal
    journal = Journal(tmp_path / "j.sqlite3")
    specs = [("pro", 5, 0, "", "succeeded")] * 3 + [("std", 10, 0, "", "processing"), ("pro", 5, 0, "4", "succeeded"),
                                                     ("pro", None, 1, "", "queued"), ("pro", 5, 0, "", "failed")]
    for i, (mode, seconds, video, units, state) in enumerate(specs):
        journal.begin(f"f{i}", 1, f"comfy-{i}", prompt="p", base_url="b", mode=mode, seconds=seconds, video_input=video)
        journal.settle(f"f{i}", 1, state, task_id=str(i))
        if units:
            journal.update_task(str(i), unit_deduction=units)
    groups = journal.billing(0)
    assert sum(n for _, n in groups) == len(specs) and len(groups) == 5
    one_by_one = ledger.counted_totals(((job, 1) for job in journal.jobs(limit=100)), DEFAULT_RATES)
    assert ledger.counted_totals(groups, DEFAULT_RATES) == one_by_one
    assert ledger.counted_totals(groups, DEFAULT_RATES).as_dict() == {
        "tasks": 6, "seconds": {"pro": 20, "std": 10}, "usd": pytest.approx(4 * 0.56 + 0.84 + 1.68)}
