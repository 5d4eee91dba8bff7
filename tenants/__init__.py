"""Tenants: the schema an operator writes, the one service that stores it, the mapping to the engine's
policy, read-back summaries and connection diagnostics."""
