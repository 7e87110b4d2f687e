"""Training: the loop (`trainer`), one epoch's steps (`engine`), parameter groups and the lr
schedule (`optim`), train.time (`time_budget`), and results.csv (`results_log`)."""
