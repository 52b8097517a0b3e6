"""Test doubles and helpers shared by the test suite (not part of any package's API)."""
