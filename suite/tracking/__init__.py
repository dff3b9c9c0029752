"""MLflow: the store a battery writes (one run per cell), a tracking server, and runs read back."""
