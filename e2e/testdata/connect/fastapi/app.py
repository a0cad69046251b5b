import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {"hello": "atrium", "version": 1, "greeting": os.environ.get("GREETING", "")}
