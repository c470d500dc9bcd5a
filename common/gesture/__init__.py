"""Hand gesture classification (the Egovision competition): data, crops, classifier, refiner.

Modules: ``data`` (folder/JSON/CSV readers and the submission writer), ``poses`` (pose table and
the left/right flip mapping), ``crops`` (keypoint crops and augmentation), ``refiner`` (rule-based
correction of confusable pairs), ``hand_keypoints`` (hand tables for the two HRNet stages),
``synthetic`` (a rendered stand-in data set), ``model`` (the timm classifier) and ``engine``
(training and prediction, called by tools/train.py and tools/test.py for ``TASK: gesture``).
"""
