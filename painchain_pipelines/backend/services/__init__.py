"""Domain logic behind the routers: config validation, secrets, event ingestion and queries."""
