"""What the tests share: builders for rows, a query counter, a private redis-server and `wait_until`."""

from embedded.waiting import wait_until

__all__ = ["wait_until"]
