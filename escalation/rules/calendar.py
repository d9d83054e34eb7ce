"""The business calendar the rules count SLA time with; it lives beside the policy (escalation.calendar)."""

from escalation.calendar import ALWAYS, CalendarError, HolidaySource, WorkingCalendar

__all__ = ["ALWAYS", "CalendarError", "HolidaySource", "WorkingCalendar"]
