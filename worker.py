"""Runs the escalation worker: `python worker.py` (or the `escalations-worker` console script). The wiring
lives in escalation.service.worker."""

from escalation.service.worker import build_activities, build_worker, connect, main

__all__ = ["build_activities", "build_worker", "connect", "main"]

if __name__ == "__main__":
    main()
