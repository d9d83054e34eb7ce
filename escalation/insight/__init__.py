"""Insight: what managers learn across cases from the events the product emits (the pattern report, themes of
the free text, the escalation-risk model). Offline tools: the worker only reads a trained risk model's file."""
