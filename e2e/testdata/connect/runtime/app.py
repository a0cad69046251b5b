"""A FastAPI app that tells who and where it runs, for the scheduler test."""
import os
import pwd

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def whoami():
    secret = os.environ.get("PROBE_FILE", "")
    try:
        with open(secret, "rb"):
            readable = True
    except OSError:
        readable = False
    cwd = os.getcwd()
    return {
        "pid": os.getpid(),
        "uid": os.getuid(),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "cwd": cwd,
        "cwd_writable": os.access(cwd, os.W_OK),
        "probe_readable": readable,
    }


@app.get("/crash")
def crash():
    os._exit(3)
