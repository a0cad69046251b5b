import os

from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/")
def root(request: Request):
    return {
        "hello": "atrium",
        "version": 1,
        "greeting": os.environ.get("GREETING", ""),
        "credentials": request.headers.get("RStudio-Connect-Credentials", ""),
    }
