# Atrium Connect's WSGI runner for python-api and python-dash content. It is
# passed to the environment's python with -c, so the bundle directory (the
# working directory) is first on sys.path, and gets: mode module object port.
#
# It finds the app the way Posit Connect does (rsconnect bundle.py
# validate_entry_point): module:object names it; a bare module means the
# first of app, application, create_app, make_app, the last two being
# factories that are called. A Dash app is served through its Flask server.
#
# The app is imported before gunicorn binds its port, so an app that does
# not import fails the deploy instead of answering 502 later.
import importlib
import sys

FALLBACK = ("app", "application", "create_app", "make_app")
FACTORIES = ("create_app", "make_app")


def fail(msg):
    print("atrium: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def resolve(mode, module, obj):
    mod = importlib.import_module(module)
    names = (obj,) if obj else FALLBACK
    for name in names:
        if not hasattr(mod, name):
            continue
        app = getattr(mod, name)
        if name in FACTORIES:
            app = app()
        break
    else:
        fail("module %s has none of %s" % (module, ", ".join(names)))
    if mode == "python-dash":
        server = getattr(app, "server", None)
        if server is None:
            fail("%s:%s is not a Dash app (it has no .server)" % (module, name))
        app = server
    if not callable(app):
        fail("%s:%s is not a WSGI application" % (module, name))
    return app


def main():
    mode, module, obj, port = sys.argv[1:5]
    app = resolve(mode, module, obj)
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        fail("gunicorn is not installed in the content's environment")

    options = {
        "bind": "127.0.0.1:" + port,
        # One process, so module state behaves as in development; threads
        # so one slow request does not hold up the rest.
        "workers": 1,
        "worker_class": "gthread",
        "threads": 8,
        # Connect stops content with SIGTERM and kills it 10s later.
        "graceful_timeout": 5,
        "errorlog": "-",
        # Draft and active instances of a bundle share its directory (and
        # HOME): a control socket there would be fought over. Older
        # gunicorns lack the setting and skip it below.
        "control_socket_disable": True,
    }

    class Runner(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self):
            return app

    Runner().run()


if __name__ == "__main__":
    main()
