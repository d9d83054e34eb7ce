"""The case and its rules: models, policies, roster and business calendars. Plain Python over pydantic: no
temporalio import, no I/O beyond reading policy and roster files, no clock reads."""
