# A Flask app with only an app factory: Connect finds create_app when the
# entrypoint names just the module, and gunicorn's SCRIPT_NAME makes
# url_for build links under the content's prefix.
from flask import Flask, request, url_for


def create_app():
    app = Flask(__name__)

    @app.get("/")
    def index():
        link = url_for("hello", name="atrium")
        return f'<!doctype html><h1>Hello from Flask</h1><a id="hello" href="{link}">say hello</a>'

    @app.get("/hello/<name>")
    def hello(name):
        return {"hello": name, "script_root": request.script_root}

    return app
