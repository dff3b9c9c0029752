"""The regression test for optimizer changes: a baseline of a quick battery, and the check against it."""
