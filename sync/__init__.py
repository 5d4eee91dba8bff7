"""The use cases of the sync: poll, apply, events, Teams session, release, directory sync, maintenance and
health, with their per-process runtime and the coordination workers share in Redis. Celery tasks, the web
app and the CLI call into here; enqueueing goes out through the `TaskQueue` port (sync/ports.py)."""
