"""Side effects of an escalation, grouped by what they touch: policy, route, notify, record."""
