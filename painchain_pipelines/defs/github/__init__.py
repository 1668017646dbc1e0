"""GitHub's Dagster wiring: `github_events` asset, its partitions and sensors."""
