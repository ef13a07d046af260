"""``make demo``: the demo data set and the two-stage run on scikit-image's photos."""
