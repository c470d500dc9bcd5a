"""Synthetic data sets that stand in for the competitions' images, which are not public."""
