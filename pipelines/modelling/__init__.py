"""Modelling: features, networks and baselines, walk-forward evaluation, the champion,
training, the forecast, and hyper-parameter sweeps."""
