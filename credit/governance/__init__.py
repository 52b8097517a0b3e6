"""Governance statistics a credit committee asks for, computed from summed counts."""
