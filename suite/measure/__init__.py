"""What a run measures: the update-norm probe, the metrics (ω, sensitivities, slopes, tests), a perturbed
run against its clean twin, the result of a cell and the metric schema."""
