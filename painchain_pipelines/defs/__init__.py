"""Dagster wiring: one folder per source (assets, partitions, sensors), thin around the
connectors, plus the shared pieces every source uses (`resources`, `settings`, `ingestion`)."""
