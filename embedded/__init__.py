"""The whole product in one place: the in-process stack that tests, the benchmark and the demo run (both
simulators, the web app, worker processes or an in-process worker) and `wait_until`."""
