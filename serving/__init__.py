"""The bank's scoring service: ``fedcredit serve`` puts a verified model package behind an HTTP API.

Builds on :mod:`credit.package` (the signed package) and :mod:`credit.scoring` (the scorer).
"""
