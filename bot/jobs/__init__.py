"""Scheduled work: the job queue (queue, kinds), the loop every replica runs (scheduler) and
the handlers, thin adapters like the listeners (load -> service -> render -> post)."""
