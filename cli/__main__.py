"""`python -m cli` is the same as the `teamsconnect` command."""

from cli.main import main

main()
