"""The Connect benchmark's Flask API (scripts/bench/connect.sh): a small
JSON answer; Connect runs it with gunicorn."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def root():
    return jsonify(hello="atrium", items=[1, 2, 3])
