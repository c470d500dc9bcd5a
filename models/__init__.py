"""HRNet models and checkpoint loading."""
