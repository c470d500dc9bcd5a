"""Synthetic data sets that stand in for the competitions' images, which are not public.

Motion keypoints: ``motion_sequences`` (poses as bone trees, calibrated by ``motion_stats.json``,
sequences and their placement), ``motion_drawing`` (figures, backgrounds, sensor noise) and
``motion`` (the data set writer, :func:`~common.synthetic.motion.generate_motion_dataset`).
Hand gestures: ``hands`` (the classes, hand shapes, drawing and clips) and ``gesture`` (the data
set writer and its command-line options). The same seed gives the same bytes.
"""
