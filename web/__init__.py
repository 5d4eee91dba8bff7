"""The web app: STARFACE webhook receiver, read-only admin API, health check and Prometheus metrics."""
