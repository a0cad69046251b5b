# Atrium Connect's runner for python-gradio content. It is passed to the
# environment's python with -c, so the bundle directory (the working
# directory) is first on sys.path, and gets: file object port root_path.
#
# Gradio apps are written to be run as scripts (`python app.py`), most
# calling demo.launch() at the end, some under `if __name__ == "__main__"`,
# some not at all. So the entry file is run as __main__ with Blocks.launch
# replaced by one that forces what Connect decides: the address and port it
# proxies to, the public prefix as root path, no share tunnel, no browser,
# no Node server for server-side rendering. An app that never launches is
# launched here: the object the entrypoint names (app:demo), else demo,
# else app, else its only Blocks.
#
# Gradio keeps uploads and outputs in GRADIO_TEMP_DIR and serves what is
# there; its default, /tmp/gradio, would be shared by every Gradio app on
# the server. Each content's go in its bundle directory (the working
# directory), which is deleted with the content, unless its publisher
# set the variable.
import inspect
import os
import runpy
import sys

FALLBACK = ("demo", "app")


def fail(msg):
    print("atrium: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    path, obj, port, root = sys.argv[1:5]
    os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(os.getcwd(), ".gradio-tmp"))
    try:
        import gradio
    except ImportError:
        fail("gradio is not installed in the content's environment")

    forced = {
        "server_name": "127.0.0.1",
        "server_port": int(port),
        "root_path": root,
        "share": False,
        "inbrowser": False,
        "ssr_mode": False,
        # Block the main thread, as a script does: the process is the app.
        "prevent_thread_lock": False,
    }
    original = gradio.Blocks.launch
    params = inspect.signature(original).parameters
    launched = []

    def launch(self, *args, **kwargs):
        if launched:
            fail("the app launches a second Gradio app; Connect serves one per content")
        launched.append(self)
        bound = inspect.signature(original).bind_partial(self, *args, **kwargs).arguments
        bound.pop("self", None)
        bound.update({k: v for k, v in forced.items() if k in params})
        return original(self, **bound)

    gradio.Blocks.launch = launch
    sys.argv = [path]
    scope = runpy.run_path(path, run_name="__main__")
    if launched:
        return
    names = (obj,) if obj else FALLBACK
    for name in names:
        app = scope.get(name)
        if isinstance(app, gradio.Blocks):
            break
    else:
        found = [v for v in scope.values() if isinstance(v, gradio.Blocks)]
        if obj or len(found) != 1:
            fail("%s does not launch a Gradio app and has no Blocks named %s" % (path, " or ".join(names)))
        app = found[0]
    app.launch()


if __name__ == "__main__":
    main()
