#!/usr/bin/env bash
# gen.sh — regenerate the rsconnect-python fixtures in apps/ and bundles/:
# each apps/<name>/manifest.json is what `rsconnect write-manifest` writes
# for that sample app, and bundles/*.tar.gz are tarballs rsconnect-python's
# own bundle code builds (manifest first for manifest/API bundles, last for
# html). The venv lives outside the clone; only the outputs are committed.
set -euo pipefail
cd "$(dirname "$0")"
cache=${ATRIUM_CACHE:-$HOME/.cache/atrium}
venv=$cache/rsconnect-venv
if [ ! -x "$venv/bin/rsconnect" ]; then
	python3 -m venv "$venv" >&2
	"$venv/bin/python" -m pip install -q rsconnect-python >&2
fi
rsc=$venv/bin/rsconnect
"$venv/bin/rsconnect" version
wm() { "$rsc" write-manifest "$@" -o --override-python-version 3.12.4 >/dev/null 2>&1; }
wm fastapi -e app:app apps/fastapi
wm flask apps/flask
wm api -e pkg.server:application apps/pkgapi
wm streamlit apps/streamlit
wm dash apps/dash
wm bokeh apps/bokeh
wm shiny apps/shiny
wm gradio apps/gradio
wm panel apps/panel
wm notebook apps/notebook/hello.ipynb
wm voila apps/voila/hello.ipynb
mkdir -p bundles
"$venv/bin/python" - <<'PY'
import json, os, shutil
from rsconnect import bundle

def save(f, name):
    with open(os.path.join("bundles", name), "wb") as out:
        shutil.copyfileobj(f, out)

# What `rsconnect deploy manifest` uploads: manifest.json first.
save(bundle.make_manifest_bundle("apps/fastapi/manifest.json"), "fastapi.tar.gz")
save(bundle.make_manifest_bundle("apps/pkgapi/manifest.json"), "pkgapi.tar.gz")
# What `rsconnect deploy html` uploads: manifest.json last.
save(bundle.make_html_bundle("apps/html", "index.html", [], []), "html.tar.gz")
# The html manifest, for the ParseManifest fixtures.
m = bundle.create_html_manifest("apps/html", "index.html", [], [])
with open("apps/html/manifest.json", "w") as out:
    json.dump(m.get_flattened_copy().data, out, indent=2)
PY
