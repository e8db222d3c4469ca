"""Depot: a JSON REST API that keeps users' files and their metadata.

`create_app` is the one app factory: config, observability (logs, request ids, metrics),
extensions, HTTP policies (proxies, CORS, security headers), blueprints, error handlers, CLI,
and the injector last, because Flask-Injector wraps the views that exist when it starts.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_injector import FlaskInjector

from app.config import Config, load_config


def create_app(config: Config | None = None) -> Flask:
    """Build the Depot app for `config` (default: the environment's, see app.config).

    Raises ConfigError listing every configuration problem; the entry points (autoapp.py,
    gunicorn.conf.py) print it with `app.config.exit_on_config_error`, without a traceback."""
    config = config or load_config()
    config.validate()

    app = Flask(__name__)
    app.config.from_object(config)
    if app.config["DATA_DIR"]:  # production on S3 may have none
        Path(app.config["DATA_DIR"]).mkdir(parents=True, exist_ok=True)

    register_observability(app)
    for notice in config.notices:
        app.logger.warning(notice)
    register_extensions(app)
    register_http_policy(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    register_injector(app)
    register_first_start(app)
    return app


def register_observability(app: Flask) -> None:
    from app.metrics import register_metrics
    from app.observability import configure_logging, register_request_id

    configure_logging(app)
    register_request_id(app)
    register_metrics(app)


def register_http_policy(app: Flask) -> None:
    from app.http_policy import register_http_policy as register

    register(app)


def register_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (registers the tables on the metadata)
    from app.api.parsing import parser
    from app.database import bound_waits, engine_options
    from app.extensions import db, limiter, migrate
    from app.transactions import init_transactions

    app.config["APISPEC_WEBARGS_PARSER"] = parser
    timeout = app.config["DATABASE_TIMEOUT_SECONDS"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config["SQLALCHEMY_DATABASE_URI"], timeout)
    db.init_app(app)
    with app.app_context():
        bound_waits(db.engine, timeout)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    limiter.init_app(app)
    init_transactions(app)


def register_blueprints(app: Flask) -> None:
    from app.api import register_api, register_docs
    from app.console import register_console

    register_api(app)
    register_console(app)
    register_docs(app)


def register_error_handlers(app: Flask) -> None:
    from app.errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from app.cli import register_cli

    register_cli(app)


def register_first_start(app: Flask) -> None:
    from app.bootstrap import create_initial_admin

    create_initial_admin(app)


def register_injector(app: Flask) -> None:
    from app.injection import DepotModule

    # Flask-Injector also wraps the Jinja globals, and its wrapper of the bound `url_for`
    # asks the injector for `**values: Any` ("Injecting Any is not supported"), which breaks
    # the Swagger UI page. Templates need none of them injected: put the originals back.
    jinja_globals = dict(app.jinja_env.globals)
    # It also wraps every before/after/teardown hook that has type hints in an injecting
    # wrapper that inspects the hook's signature on each call, which costs more per request
    # than the hooks themselves; none of ours takes an injected argument: unwrap them after.
    hooks = _request_hooks(app)
    # Services needed outside views (token checks, CLI, first start) come from app.injector.
    app.injector = FlaskInjector(app=app, modules=[DepotModule()]).injector
    app.jinja_env.globals.update(jinja_globals)
    _restore_request_hooks(app, hooks)
    _share_view_instances(app)


def _share_view_instances(app: Flask) -> None:
    """Flask-Injector builds a new resource, with injection, for every request; resources
    that declare `shared_instance = True` (ours) are built once, on first use, instead."""
    for endpoint, view in list(app.view_functions.items()):
        view_class = getattr(view, "view_class", None)
        if view_class is not None and getattr(view_class, "shared_instance", False):
            app.view_functions[endpoint] = _shared_instance_view(view_class, app)


def _shared_instance_view(view_class, app: Flask):
    instance = None

    def view(*args, **kwargs):
        nonlocal instance
        if instance is None:  # a race builds two equal instances; either serves
            instance = app.injector.create_object(view_class)
        return instance.dispatch_request(*args, **kwargs)

    view.view_class = view_class
    view.__name__ = view_class.__name__
    return view


_HOOK_CONTAINERS = ("before_request_funcs", "after_request_funcs", "teardown_request_funcs")


def _request_hooks(app: Flask) -> set[int]:
    return {id(f) for name in _HOOK_CONTAINERS for funcs in getattr(app, name).values() for f in funcs}


def _restore_request_hooks(app: Flask, originals: set[int]) -> None:
    """Put back the hooks that existed before Flask-Injector wrapped them (its own stay)."""
    for name in _HOOK_CONTAINERS:
        for funcs in getattr(app, name).values():
            for index, hook in enumerate(funcs):
                inner = hook
                while id(inner) not in originals and hasattr(inner, "__wrapped__"):
                    inner = inner.__wrapped__
                if id(inner) in originals:
                    funcs[index] = inner
