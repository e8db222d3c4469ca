"""Entry point for gunicorn and the flask CLI: the app built for the environment's config."""

from app import create_app

app = create_app()
