"""Hand gesture classification (the Egovision competition): data, crops, classifier, refiner.

Modules: ``data`` (folder, JSON and pose-table readers), ``submission`` (sample submission, test
answers and the submission writer), ``poses`` (the left/right flip mapping), ``crops`` (keypoint
crops and augmentation), ``frames`` (the frames data set, its loader and the models' softmax),
``folds`` (cross-validation folds), ``optim`` (optimiser and LR schedule), ``model`` (the timm
classifier), ``training`` (:func:`train_gesture`), ``scoring`` (clip scores and their fold
means), ``refiner`` (rule-based correction of confusable pairs) with ``refiner_statistics`` and
``refiner_thresholds``, ``refiner_folds`` (fitting and scoring the refiner on the trained folds),
``prediction`` (:func:`predict_gesture`, in the stage interface's steps), ``stage`` (the
classifier behind ``common.stage.StageTask``, run by tools/train.py and tools/test.py for
``TASK: gesture``), ``files`` (the run's file names and the config's data paths),
``hand_keypoints`` (hand tables for the two HRNet stages), ``report`` (the numbers of
``tools/gesture_report.py``). The synthetic stand-in data set is written by
``common.synthetic``.
"""
