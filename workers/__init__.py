"""The Celery app and its thin tasks: poll, apply, STARFACE events, maintenance."""
