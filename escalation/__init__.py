"""Customer escalations as durable Temporal workflows.

    domain/    the case and its rules: models, policies, roster, business calendars; pure, no temporalio
    client/    the client library: the contract table, data converter, typed errors, JSON Schemas, `Case`
    cli/       the `escalations` command: views and `doctor`
    delivery/  delivery settings, the inbound endpoint for customers' answers, signatures, redaction
    service/   the worker's wiring (`escalations-worker`) and the roster watcher
    dev/       the embedded dev run (`make run`) and its demo cases

Shared by all of them: `config` (every setting), `constants` (public names), `search` (search attributes),
`logs`, `files`. The workflow lives in the top-level `workflows/`, the activities in `activities/`.
"""
