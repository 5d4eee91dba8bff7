"""Tests of the STARFACE simulator and connector (issue 4)."""
