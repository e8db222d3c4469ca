"""Entry point for gunicorn and the flask CLI: the app built for the environment's config.

A configuration problem ends the process here with every problem listed, one line each,
and exit status 2, instead of a traceback (see app.config.ConfigError)."""

from app import create_app
from app.config import ConfigError, exit_on_config_error

try:
    app = create_app()
except ConfigError as error:
    exit_on_config_error(error)
