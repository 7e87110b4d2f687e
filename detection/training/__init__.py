"""Training: the loop (`trainer`), the config resolved once and what it trains (`plan`), stages,
lr and deadlines (`schedule`, on `optim` and `time_budget`), one epoch's steps (`engine`),
`resume=` (`resume`), Ctrl-C (`interrupt`), and what the run reports (`results_log`)."""
