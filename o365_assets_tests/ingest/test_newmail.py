import datetime

from o365_assets.ingest import newmail

NOW = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


def at(hours_ago: float) -> datetime.datetime:
    return NOW - datetime.timedelta(hours=hours_ago)


def test_first_tick_looks_back_a_day_and_requests_each_date_once():
    since = newmail.query_since(None, NOW)
    plan = newmail.plan(None, [("a", at(13)), ("b", at(2)), ("c", at(1))], "UTC", NOW)

    assert since == NOW - newmail.FIRST_LOOKBACK
    assert plan.dates == [datetime.date(2026, 12, 2), datetime.date(2026, 12, 3)]
    assert plan.new_ids == ["a", "b", "c"]


def test_second_tick_with_the_same_mail_requests_nothing_and_keeps_the_cursor_moving():
    first = newmail.plan(None, [("a", at(2)), ("b", at(0.1))], "UTC", NOW)
    since = newmail.query_since(first.cursor, NOW)
    # Graph returns what was received since the overlap window: b again.
    second = newmail.plan(first.cursor, [("b", at(0.1))], "UTC", NOW)

    assert since == at(0.1) - newmail.OVERLAP
    assert second.dates == []
    assert second.new_ids == []

    third = newmail.plan(second.cursor, [("b", at(0.1)), ("late", at(0.15))], "UTC", NOW)
    assert third.new_ids == ["late"]
    assert third.dates == [datetime.date(2026, 12, 3)]


def test_dates_follow_the_partition_timezone():
    late_evening_utc = datetime.datetime(2026, 12, 2, 23, 30, tzinfo=datetime.UTC)
    plan = newmail.plan(None, [("a", late_evening_utc)], "Europe/Berlin", NOW)

    assert plan.dates == [datetime.date(2026, 12, 3)]


def test_run_key_digest_depends_on_the_new_mail_only():
    one = newmail.plan(None, [("a", at(1)), ("b", at(2))], "UTC", NOW)
    same = newmail.plan(None, [("b", at(2)), ("a", at(1))], "UTC", NOW)
    other = newmail.plan(None, [("a", at(1))], "UTC", NOW)

    assert one.digest == same.digest
    assert one.digest != other.digest


def test_a_truncated_answer_asks_for_every_date_since_the_cursor():
    first = newmail.plan(None, [("a", at(30))], "UTC", NOW)
    plan = newmail.plan(first.cursor, [("z", at(1))], "UTC", NOW, truncated=True)

    assert plan.dates == [datetime.date(2026, 12, 2), datetime.date(2026, 12, 3)]
