"""Hyper-parameter sweeps: the grid, one config's run, their leaderboard."""
