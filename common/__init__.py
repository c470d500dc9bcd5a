"""Shared by both stages: config, seeding, splits, metrics, file formats, gesture classifier."""
