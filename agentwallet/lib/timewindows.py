"""Spend windows (no ORM): rolling 24 hours and calendar months in a time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

ROLLING_DAY = timedelta(hours=24)


def is_valid_time_zone(name: str) -> bool:
    if name not in available_timezones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def rolling_day_start(now: datetime) -> datetime:
    """Start of the rolling 24-hour window ending at `now`."""
    return now - ROLLING_DAY


def month_bounds(now: datetime, tz_name: str) -> tuple[datetime, datetime]:
    """[start, end) of the calendar month containing `now` in `tz_name`, as aware datetimes."""
    tz = ZoneInfo(tz_name)
    local = now.astimezone(tz)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        end = start.replace(year=start.year + 1, month=1)
    else:
        end = start.replace(month=start.month + 1)
    # Re-attach the zone so the UTC offset is right on each side of a DST change.
    return start.replace(tzinfo=tz), end.replace(tzinfo=tz)


def day_end(now: datetime, tz_name: str) -> datetime:
    """End of the calendar day containing `now` in `tz_name`."""
    tz = ZoneInfo(tz_name)
    local = now.astimezone(tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return (start + timedelta(days=1)).replace(tzinfo=tz)


def floor_to(when: datetime, step: timedelta) -> datetime:
    """Round an aware datetime down to a whole step (minute, hour) since the epoch."""
    epoch = datetime(1970, 1, 1, tzinfo=when.tzinfo)
    return when - (when - epoch) % step


def ceil_to(when: datetime, step: timedelta) -> datetime:
    floored = floor_to(when, step)
    return floored if floored == when else floored + step


MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
