"""What to run: perturbation kinds, learning-rate schedules, cells and their keys, battery specs (flags or
TOML), and the default battery."""
