"""The `teamsconnect` command line."""
