"""Faithful fakes of the external systems (Microsoft, STARFACE), served over real HTTP."""
