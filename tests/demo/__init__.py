"""Tests of `teamsconnect demo`."""
