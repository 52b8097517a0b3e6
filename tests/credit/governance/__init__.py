"""Tests of the governance statistics."""
