from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from painchain_pipelines.backend.config import BackendSettings
from painchain_pipelines.backend.models import Base, modelled_objects

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = BackendSettings.from_env().database_url
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=modelled_objects(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
