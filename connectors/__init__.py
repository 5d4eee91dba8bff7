"""Typed clients for the external systems (Microsoft Graph, STARFACE); I/O only."""
