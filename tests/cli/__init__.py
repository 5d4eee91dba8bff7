"""Tests of the operator command line: tenants, processes, health checks and the compose file."""
