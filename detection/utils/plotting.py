"""matplotlib for files: every plot (results.png, the evaluation's curves, the data check's
histograms) draws through here, on the Agg backend, so no display is ever needed."""


def pyplot():
    """matplotlib's pyplot on the Agg backend: files only, no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
