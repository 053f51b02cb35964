"""Data and helpers of the operations tests: a test plugin distribution, a service process."""
