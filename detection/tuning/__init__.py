"""tools/tune.py: search the training recipe under a time budget (Optuna, an optional extra).

`space` says what may change and checks it like a config; `study` runs the trials on a split
carved from the training images, prunes the weak ones on their validations, and trains the
best configuration on all training images; `report` writes what the user reads.
"""
