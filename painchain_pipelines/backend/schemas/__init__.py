"""Request and response bodies (pydantic), separate from the SQLAlchemy models."""
