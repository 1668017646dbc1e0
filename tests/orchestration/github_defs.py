"""The product's GitHub definitions, as the tests drive them (one name per definition)."""

from painchain_pipelines.defs.github.definitions import defs

github_events = defs.get_assets_def("github_events")
[github_events_job] = defs.jobs
_sensors = {sensor.name: sensor for sensor in defs.sensors}
github_integrations_sensor = _sensors["github_integrations_sensor"]
github_live_sensor = _sensors["github_live_sensor"]
github_deferred_retry_sensor = _sensors["github_deferred_retry_sensor"]
[github_daily_reconcile_schedule] = defs.schedules


def product_definitions():
    """Everything `painchain up` loads (definitions.py reads the defs/ folder on demand)."""
    from painchain_pipelines.definitions import defs as load_defs

    return load_defs()
