"""Test doubles shared by the test suites: in-memory and fault-injecting blob stores."""
