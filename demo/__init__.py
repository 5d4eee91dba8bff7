"""`teamsconnect demo`: the scripted office hour on embedded defaults, checked expectation by expectation."""
