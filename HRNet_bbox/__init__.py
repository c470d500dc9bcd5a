"""Stage one: one person box per whole image, regressed by an HRNet."""
