"""Dev tooling: the embedded run behind `make run` (dev server, worker, UI) and its demo cases."""
