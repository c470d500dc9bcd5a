"""Stage two: HRNet heatmap regression on person boxes."""
