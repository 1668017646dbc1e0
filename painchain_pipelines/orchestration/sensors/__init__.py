"""The sensors of a connector: integrations (partitions + first syncs), live polling and
deferred retries. docs/orchestration.md says what each does on each branch."""
