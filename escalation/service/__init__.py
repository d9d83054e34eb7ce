"""The worker service: how `escalations-worker` is wired (activities, interceptors, tuning) and the roster
watcher that runs beside it."""
