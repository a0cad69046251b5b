"""The Connect benchmark's FastAPI app (scripts/bench/connect.sh): a small
JSON answer, so the benchmark measures serving, not the app's work."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {"hello": "atrium", "items": [1, 2, 3]}
