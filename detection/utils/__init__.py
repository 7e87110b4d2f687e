"""The ground every part stands on, importing nothing above it: the run folder's layout (`runs`),
the commands' names, safe YAML, file locks, processes (`distributed`), precision, the progress
line, random state, the detection dicts and their drawing, plots and COCO results files."""
