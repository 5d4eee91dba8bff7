"""Alembic migrations (run with `teamsconnect db upgrade`); a package so that installs carry them."""
